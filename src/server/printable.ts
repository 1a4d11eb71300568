/**
 * Text that comes from the server (statement texts, user and host names, error messages, names of
 * channels and files) and is shown anywhere: the terminal, the log, the history, status, check and VMS_*.
 * Any database user can put escape sequences in a statement or a name; here they become visible text.
 */

// C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: ReadonlyMap<string, string> = new Map([
  ['\n', '\\n'],
  ['\r', '\\r'],
  ['\t', '\\t'],
]);

export function printable(text: string): string {
  return text.replace(CONTROL, (character) => NAMED.get(character) ?? escapeCode(character.charCodeAt(0)));
}

function escapeCode(code: number): string {
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}
