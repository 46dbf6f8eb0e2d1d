/** A text collector for commands that print to an `Out` (process.stdout in the CLI). */
export class Sink {
  text = '';
  constructor(readonly isTTY = false) {}
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}
