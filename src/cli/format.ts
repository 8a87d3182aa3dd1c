/** Human-readable sizes and counts for CLI output. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatCount(count: number): string {
  return count.toLocaleString('en-US');
}

/** Parses "5GB", "512MiB", "1e9" into bytes. */
export function parseSize(text: string): number {
  const match = /^\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(text);
  if (!match) throw new Error(`"${text}" is not a size (e.g. 5GB, 512MiB, 1000000)`);
  const value = Number(match[1]);
  const unit = (match[2] ?? '').toLowerCase().replace(/b$/, '');
  const powers: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, ti: 1024 ** 4 };
  const factor = powers[unit];
  if (factor === undefined || !Number.isFinite(value) || value <= 0) throw new Error(`"${text}" is not a size (e.g. 5GB, 512MiB, 1000000)`);
  return Math.floor(value * factor);
}
