/**
 * Per-token limits on mutations: a token bucket per caller, in this API process (a team running
 * several API processes behind a balancer gets the limit per process). A burst of `burst`
 * mutations goes through at once; after that one more every 60/`perMinute` seconds.
 */
import { GraphQLError } from 'graphql';

export interface RateLimitSettings {
  burst: number;
  perMinute: number;
}

export const DEFAULT_MUTATION_RATE: RateLimitSettings = { burst: 30, perMinute: 120 };

interface Bucket {
  tokens: number;
  at: number;
}

export class MutationRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly settings: RateLimitSettings, private readonly now: () => number = Date.now) {}

  /** Takes one mutation from `key`'s bucket, or throws RATE_LIMITED saying when the next one is allowed. */
  take(key: string): void {
    const now = this.now();
    const rate = this.settings.perMinute / 60_000;
    const bucket = this.buckets.get(key) ?? { tokens: this.settings.burst, at: now };
    bucket.tokens = Math.min(this.settings.burst, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    const retryAfterSeconds = Math.ceil((1 - bucket.tokens) / rate / 1000);
    throw new GraphQLError(`rate limited: more than ${this.settings.burst} mutations in a burst, or more than ${this.settings.perMinute} a minute, from this token; retry in ${retryAfterSeconds} s`, {
      extensions: { code: 'RATE_LIMITED', retryAfterSeconds, http: { status: 429, headers: new Map([['retry-after', String(retryAfterSeconds)]]) } },
    });
  }
}
