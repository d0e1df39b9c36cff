/** The message of any thrown value: an Error's message, anything else as a string. No dependencies. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
