// Small Markdown readers for the examples' READMEs: their relative links (which must point at files
// that exist, and at headings that exist), and their code (fenced blocks and inline spans), where
// the commands and flags they tell readers to type are.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const FENCE = /^(```|~~~)[^\n]*\n[\s\S]*?^\1[ \t]*$/gm;

/** The fenced code blocks' contents, lines continued with a trailing backslash joined into one. */
export function codeBlocks(markdown: string): string[] {
  return [...markdown.matchAll(FENCE)].map((match) => match[0].split('\n').slice(1, -1).join('\n').replace(/\\\n\s*/g, ' '));
}

/** The inline code spans outside fenced blocks. */
export function inlineCode(markdown: string): string[] {
  return [...markdown.replace(FENCE, '').matchAll(/`([^`\n]+)`/g)].map((match) => match[1] ?? '');
}

/** The targets of the relative links outside code (not http(s), mailto or same-page anchors). */
export function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(FENCE, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((match) => match[1] ?? '')
    .filter((target) => target !== '' && !/^(https?:|mailto:|#)/.test(target));
}

/** The anchors GitHub gives a document's headings (lowercase, punctuation dropped, spaces to dashes, -N for repeats). */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const match of markdown.replace(FENCE, '').matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = (match[1] ?? '').toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').trim().replace(/\s/g, '-');
    let anchor = base;
    for (let n = 1; anchors.has(anchor); n++) anchor = `${base}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
}

/** What is wrong with the relative links of the Markdown file at `path`: missing files, unknown headings. */
export function brokenLinks(path: string): string[] {
  const broken: string[] = [];
  for (const target of relativeLinks(readFileSync(path, 'utf8'))) {
    const [file = '', anchor] = target.split('#', 2);
    const resolved = resolve(dirname(path), decodeURIComponent(file));
    if (!existsSync(resolved)) {
      broken.push(`${target}: no such file (${resolved})`);
      continue;
    }
    if (anchor !== undefined && anchor !== '' && statSync(resolved).isFile() && resolved.endsWith('.md') && !headingAnchors(readFileSync(resolved, 'utf8')).has(anchor)) {
      broken.push(`${target}: no heading with that anchor`);
    }
  }
  return broken;
}
