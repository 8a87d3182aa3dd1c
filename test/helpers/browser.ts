/** Debian's Chromium for the browser tests (playwright-core drives it; nothing is downloaded). */
import { existsSync } from 'node:fs';
import { Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const HAS_BROWSER = existsSync(CHROMIUM);
if (!HAS_BROWSER && process.env.APL_MERGE_REQUIRE_BROWSER === '1') throw new Error(`${CHROMIUM} is missing, and APL_MERGE_REQUIRE_BROWSER=1 requires it (apt-get install chromium)`);

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}
