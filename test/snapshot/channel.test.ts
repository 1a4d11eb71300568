/** The channel between freeze and its holder, over a real Unix socket pair. */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Channel } from '../../src/snapshot/channel';
import { waitFor } from '../support/wait';

type Message = { n: number; text?: string };

/** Two connected sockets: a channel on one end, the raw socket on the other. */
async function socketPair(context: TestContext): Promise<{ channel: Channel<Message, Message>; peer: net.Socket }> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-channel-'));
  const server = net.createServer();
  context.after(() => {
    server.close();
    fs.rmSync(directory, { recursive: true, force: true });
  });
  await new Promise<void>((resolve) => server.listen(path.join(directory, 's'), resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const peer = net.connect(path.join(directory, 's'));
  const channel = new Channel<Message, Message>(await accepted);
  context.after(() => {
    peer.destroy();
    channel.close();
  });
  return { channel, peer };
}

function recorder(channel: Channel<Message, Message>): { messages: Message[]; closed: () => boolean } {
  const messages: Message[] = [];
  let closed = false;
  channel.listen({ message: (message) => messages.push(message), closed: () => (closed = true) });
  return { messages, closed: () => closed };
}

test('messages split across writes, and several in one, arrive whole and in order', async (context) => {
  const { channel, peer } = await socketPair(context);
  const { messages } = recorder(channel);
  peer.write('{"n":1,"text":"a\\nb"}\n{"n"');
  await new Promise((resolve) => setTimeout(resolve, 20));
  peer.write(':2}\n{"n":3}\n');
  await waitFor('three messages', () => (messages.length === 3 ? true : undefined));
  assert.deepEqual(messages, [{ n: 1, text: 'a\nb' }, { n: 2 }, { n: 3 }]);
});

test('what comes while nobody listens is held for the next listener, and a close is told to a late one', async (context) => {
  const { channel, peer } = await socketPair(context);
  const first: Message[] = [];
  channel.listen({
    message: (message) => {
      first.push(message);
      channel.listen(undefined); // as the holder does after freeze's start message
    },
    closed: () => undefined,
  });
  peer.end('{"n":1}\n{"n":2}\n{"n":3}\n');
  await waitFor('the channel to close', () => (channel.isOpen ? undefined : true));
  assert.deepEqual(first, [{ n: 1 }]);
  const { messages, closed } = recorder(channel);
  assert.deepEqual(messages, [{ n: 2 }, { n: 3 }]);
  assert.equal(closed(), true);
});

test('send resolves once written, and the peer reads one JSON line per message', async (context) => {
  const { channel, peer } = await socketPair(context);
  recorder(channel);
  let received = '';
  peer.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  await channel.send({ n: 1, text: 'pass\nword' });
  await channel.send({ n: 2 });
  await waitFor('both lines', () => (received.split('\n').length === 3 ? true : undefined));
  assert.deepEqual(received.trimEnd().split('\n').map((line) => JSON.parse(line) as Message), [{ n: 1, text: 'pass\nword' }, { n: 2 }]);
  channel.close();
  await channel.send({ n: 3 }); // closed: resolves at once, sends nothing
});

test('a line that is not JSON closes the channel: whoever speaks is not our peer', async (context) => {
  const { channel, peer } = await socketPair(context);
  const { messages, closed } = recorder(channel);
  peer.write('{"n":1}\nnot json\n{"n":2}\n');
  await waitFor('the channel to close', () => (closed() ? true : undefined));
  assert.deepEqual(messages, [{ n: 1 }]);
  assert.equal(channel.isOpen, false);
});
