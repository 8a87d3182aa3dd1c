/** A problem with what the caller asked for; `code` is what the API reports. */
export class RegistryError extends Error {
  constructor(
    readonly code: 'BAD_USER_INPUT' | 'NOT_FOUND' | 'CONFLICT' | 'FORBIDDEN' | 'RATE_LIMITED',
    message: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}
