/**
 * The private channel between freeze and its lock holder: the two ends of a socket pair, made when
 * freeze starts the holder (src/snapshot/spawnholder.ts; the holder's end is its descriptor 3), carrying one JSON
 * message per line. The credentials travel here and nowhere else. Either side sees the channel close
 * when the other exits: a holder whose freeze went before acknowledging the lock releases it.
 */
import fs = require('node:fs');
import net = require('node:net');

/** The holder's end: its descriptor 3, if it is a socket (started by freeze, not by hand). */
const HOLDER_CHANNEL_FD = 3;

export interface ChannelListener<In> {
  message(message: In): void;
  /** the channel closed: the peer exited or closed it, or we did */
  closed(): void;
}

export class Channel<In, Out> {
  private pending = '';
  private closed = false;
  private listener: ChannelListener<In> | undefined;
  /** what came while nobody listened */
  private readonly held: In[] = [];

  /** Over any connected stream socket (the two below are the ones the hook uses). */
  constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.received(chunk));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
  }

  /** Our end, on freeze's side: the socket the holder was started with (its descriptor 3). */
  static ofSocket<In, Out>(socket: net.Socket): Channel<In, Out> {
    return new Channel(socket);
  }

  /** The holder's end, or undefined if descriptor 3 is not a socket. */
  static ofHolder<In, Out>(): Channel<In, Out> | undefined {
    try {
      if (!fs.fstatSync(HOLDER_CHANNEL_FD).isSocket()) return undefined;
    } catch {
      return undefined;
    }
    return new Channel(new net.Socket({ fd: HOLDER_CHANNEL_FD, readable: true, writable: true }));
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /**
   * Who gets the messages from now on, starting with those that came while nobody listened (undefined:
   * hold them). A listener that comes after the close hears of it at once.
   */
  listen(listener: ChannelListener<In> | undefined): void {
    this.listener = listener;
    while (this.listener !== undefined && this.held.length > 0) this.listener.message(this.held.shift() as In);
    if (this.closed) this.listener?.closed();
  }

  /** Resolves once the message is handed to the kernel (so that exiting right after cannot drop it), or at once if closed. */
  send(message: Out): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.write(`${JSON.stringify(message)}\n`, () => resolve());
    });
  }

  /** Closes our end; what was sent is already with the kernel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.listener?.closed();
  }

  private received(chunk: string): void {
    this.pending += chunk;
    for (let end = this.pending.indexOf('\n'); end >= 0 && !this.closed; end = this.pending.indexOf('\n')) {
      const line = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 1);
      let message: In;
      try {
        message = JSON.parse(line) as In;
      } catch {
        return this.close(); // not our peer speaking
      }
      if (this.listener === undefined) this.held.push(message);
      else this.listener.message(message);
    }
  }
}
