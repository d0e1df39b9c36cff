/**
 * JSON request bodies read strictly: a key that appears twice in one object is refused (JSON.parse would keep the
 * last one silently, so a reviewer and the API could read different values from the same request).
 */

type Frame = { kind: 'object'; keys: Set<string>; key: string; expectKey: boolean } | { kind: 'array'; index: number };

/**
 * The dotted path of the first key that appears twice in one object of `text` (`ssh.port`, `servers.0.name`), or
 * undefined. Text that is not JSON yields undefined: JSON.parse reports it.
 */
export function findDuplicateKey(text: string): string | undefined {
  const stack: Frame[] = [];
  const pathTo = (key: string) =>
    [...stack.slice(0, -1).map((f) => (f.kind === 'object' ? f.key : String(f.index))), key].join('.');
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const raw = text.slice(i, j + 1);
      i = j + 1;
      const top = stack[stack.length - 1];
      if (top?.kind === 'object' && top.expectKey) {
        let key: string;
        try {
          key = JSON.parse(raw) as string;
        } catch {
          return undefined;
        }
        if (top.keys.has(key)) return pathTo(key);
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      continue;
    }
    if (c === '{') stack.push({ kind: 'object', keys: new Set(), key: '', expectKey: true });
    else if (c === '[') stack.push({ kind: 'array', index: 0 });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top?.kind === 'object') top.expectKey = true;
      else if (top?.kind === 'array') top.index++;
    }
    i++;
  }
  return undefined;
}
