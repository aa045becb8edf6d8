import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson, compareToolPin, describeToolsChange, toolDigest, toolDigests, toolsDigest } from '../../../src/shared/contract/fingerprint.js';
import { MCPServersConfigSchema } from '../../../src/shared/contract/dialects.js';

describe('canonical JSON (RFC 8785)', () => {
  it('sorts members by UTF-16 code units and writes numbers as ECMAScript does (the RFC 8785 section 3.2.3 example)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    // Read the order off the text: JSON.parse would put the integer-like key '1' first again.
    const keys = [...canonicalJson(input).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
    assert.deepEqual(keys, ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
    assert.equal(
      canonicalJson({ numbers: [333333333.3333333, 1e30, 4.5, 0.002, 1e-27], literals: [null, true, false] }),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}',
    );
  });

  it('gives the same text for the same object whatever its member order, and drops undefined members', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } }), canonicalJson({ a: { d: [1, { x: 1, y: 2 }] }, b: 1 }));
    assert.equal(canonicalJson({ a: { d: [1, { x: 1, y: 2 }] }, b: 1 }), '{"a":{"d":[1,{"x":1,"y":2}]},"b":1}');
  });

  it('refuses what JSON cannot hold rather than hash something else', () => {
    assert.throws(() => canonicalJson({ n: Number.NaN }), /NaN/);
  });
});

describe('tool fingerprints', () => {
  const echo = { name: 'echo', description: 'Echo text back', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } };
  const add = { name: 'add', description: 'Add', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } };

  it('changes a tool digest when its description, schema or annotations change, not when its title does', () => {
    const d = toolDigest(echo);
    assert.match(d, /^[0-9a-f]{64}$/);
    assert.notEqual(toolDigest({ ...echo, description: 'Echo text back, and mail it to me' }), d);
    assert.notEqual(toolDigest({ ...echo, inputSchema: { type: 'object' } }), d);
    assert.notEqual(toolDigest({ ...echo, annotations: { destructiveHint: true } }), d);
    assert.equal(toolDigest({ ...echo, title: 'Echo' } as typeof echo), d);
  });

  it('gives a list digest that does not depend on the order the server lists its tools in', () => {
    assert.equal(toolsDigest(toolDigests([echo, add])), toolsDigest(toolDigests([add, echo])));
    assert.notEqual(toolsDigest(toolDigests([echo, add])), toolsDigest(toolDigests([echo])));
  });

  it('names the tools added, removed and changed since a per-tool pin', () => {
    const pin = { toolDigests: toolDigests([echo, add]) };
    const found = toolDigests([
      { ...echo, description: 'changed' },
      { name: 'exfiltrate', inputSchema: { type: 'object' } },
    ]);
    const c = compareToolPin(pin, found)!;
    assert.deepEqual({ added: c.added, removed: c.removed, changed: c.changed }, { added: ['exfiltrate'], removed: ['add'], changed: ['echo'] });
    assert.equal(describeToolsChange(c), "the server's tools differ from the pinned ones (changed: echo; added: exfiltrate; removed: add)");
    assert.equal(compareToolPin(pin, toolDigests([add, echo])), undefined);
  });

  it('tells a pinned list digest that no longer matches, with both digests', () => {
    const found = toolDigests([echo]);
    assert.equal(compareToolPin({ toolsDigest: toolsDigest(found) }, found), undefined);
    const c = compareToolPin({ toolsDigest: toolsDigest(toolDigests([add])) }, found)!;
    assert.deepEqual(c.listDigest, { pinned: toolsDigest(toolDigests([add])), found: toolsDigest(found) });
  });

  it('takes the pin in every dialect of a server entry, and refuses a digest that is not sha256 hex', () => {
    const d = toolsDigest({});
    const cfg = MCPServersConfigSchema.parse({
      mcpServers: {
        a: { command: 'node', toolsDigest: d },
        b: { url: 'https://mcp.example.com/mcp', toolDigests: { echo: d } },
        c: { type: 'url', endpoint: 'https://mcp.example.com/mcp', toolsDigest: d },
      },
    });
    assert.equal(cfg.mcpServers.a!.toolsDigest, d);
    assert.deepEqual(cfg.mcpServers.b!.toolDigests, { echo: d });
    assert.equal(cfg.mcpServers.c!.toolsDigest, d);
    const bad = MCPServersConfigSchema.safeParse({ mcpServers: { a: { command: 'node', toolsDigest: 'abc' } } });
    assert.ok(!bad.success && /64 lower-case hex/.test(bad.error.message), bad.success ? '' : bad.error.message);
  });
});
