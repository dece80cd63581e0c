// yaml.parseDocument with a fail-fast pre-pass: a document full of syntax errors (an 80 KB
// task YAML with ~34,000, found by bench/fuzz) costs seconds to compose even with pretty errors
// off, and callers report only the first error anyway.
import {
  Document,
  type DocumentOptions,
  type ParseOptions,
  Parser,
  parseDocument,
  type SchemaOptions,
  YAMLParseError,
} from 'yaml';

/**
 * parseDocument, except that when yaml's CST parser meets a syntax error token the text is not
 * composed: the result is an empty Document whose only error is that first one (position and
 * message as yaml reports it), so a broken file fails in time linear in the text before it.
 */
export function parseYamlDocument(
  text: string,
  options: ParseOptions & DocumentOptions & SchemaOptions = {},
): Document.Parsed | Document {
  for (const tok of new Parser().parse(text)) {
    if (tok.type === 'error') {
      // Compose only the text up to this error: errors the composer finds before it come first
      // (cutting the text can add errors only after the cut, which sort last).
      const end = tok.offset + tok.source.length;
      const head = parseDocument(text.slice(0, end), options);
      const first = [...head.errors].sort((a, b) => a.pos[0] - b.pos[0])[0];
      const doc = new Document(null, options);
      doc.errors.push(
        first && first.pos[0] <= tok.offset
          ? first
          : new YAMLParseError([tok.offset, end], 'UNEXPECTED_TOKEN', tok.message),
      );
      return doc;
    }
  }
  return parseDocument(text, options);
}
