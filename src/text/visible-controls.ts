/**
 * On a terminal, control characters a model emits (ESC above all) would be interpreted as terminal commands:
 * show them as Unicode control pictures (␛, ␀...) instead; newlines and tabs pass. Pipes get the text as is.
 */
export function visibleControls(s: string): string {
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => String.fromCharCode(c === '\x7f' ? 0x2421 : 0x2400 + c.charCodeAt(0)));
}
