/**
 * Tokens verified by this server, kept between requests so that a request costs no token lookup.
 * Sound because a token changes in one way only once it exists — it is revoked — and every
 * revocation is announced by NOTIFY in the transaction that revokes it (store/tokens.ts), which
 * this server LISTENs to: a revocation empties its entry when the notification arrives, which is
 * when the revoking command's transaction commits. While that listener is disconnected a
 * revocation could go unheard, so nothing is served from memory then, and the cache starts empty
 * when it is back. Expiry is checked against the clock on every request; an entry also lapses after
 * `ttlMs`, and when its last_used_at is due to be written (verifyToken writes it).
 */
import { PrismaClient } from '../store/client';
import { hashToken, lastUsedIsStale, TokenCheck, TokenInfo, tokenStanding, verifyToken } from '../store/tokens';

export class TokenCache {
  private readonly entries = new Map<string, { token: TokenInfo; storedAt: number }>();
  private listening = false;
  /** Bumped by every revocation and disconnection: a lookup that began before one is not stored. */
  private generation = 0;

  constructor(
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 10_000,
  ) {}

  /** The revocation listener is connected (true) or lost (false); either way the cache starts afresh. */
  setListening(listening: boolean): void {
    this.listening = listening;
    this.generation++;
    this.entries.clear();
  }

  /** A revocation was announced for this token id. */
  revoked(tokenId: string): void {
    this.generation++;
    for (const [hash, entry] of this.entries) if (entry.token.id === tokenId) this.entries.delete(hash);
  }

  get size(): number {
    return this.entries.size;
  }

  async verify(prisma: PrismaClient, token: string): Promise<TokenCheck> {
    if (!this.listening) return verifyToken(prisma, token);
    const now = Date.now();
    const hash = hashToken(token);
    const hit = this.entries.get(hash);
    if (hit && now - hit.storedAt < this.ttlMs && !lastUsedIsStale(hit.token, now)) {
      const standing = tokenStanding(hit.token, now);
      if (standing.ok) return standing;
      this.entries.delete(hash);
    }
    const generation = this.generation;
    const check = await verifyToken(prisma, token);
    if (check.ok && this.listening && generation === this.generation) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(hash, { token: check.token, storedAt: now });
    }
    return check;
  }
}
