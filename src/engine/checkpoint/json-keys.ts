/**
 * JSON.parse silently keeps the last of two equal keys. A safetensors header with a duplicate
 * tensor name is ambiguous (which data is the tensor?), so we scan for duplicates ourselves.
 * Returns the first duplicated key and the object path it occurs in, or undefined.
 * The text must already be valid JSON (call after JSON.parse succeeded).
 */
export function findDuplicateKey(text: string): { key: string; path: string } | undefined {
  const stack: Array<{ keys: Set<string> | undefined; path: string; expectKey: boolean; lastKey: string }> = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '"') {
      const end = stringEnd(text, i);
      const frame = stack[stack.length - 1];
      if (frame?.keys && frame.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (frame.keys.has(key)) return { key, path: frame.path };
        frame.keys.add(key);
        frame.lastKey = key;
        frame.expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (ch === '{' || ch === '[') {
      const parent = stack[stack.length - 1];
      const path = parent ? (parent.keys ? `${parent.path}/${parent.lastKey}` : `${parent.path}/[]`) : '';
      stack.push({ keys: ch === '{' ? new Set() : undefined, path, expectKey: ch === '{', lastKey: '' });
    } else if (ch === '}' || ch === ']') {
      stack.pop();
    } else if (ch === ',') {
      const frame = stack[stack.length - 1];
      if (frame?.keys) frame.expectKey = true;
    }
    i++;
  }
  return undefined;
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    if (text[i] === '\\') i += 2;
    else if (text[i] === '"') return i;
    else i++;
  }
  return text.length - 1;
}
