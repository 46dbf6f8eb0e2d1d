#!/usr/bin/env python3
"""Writes test/engine/fixtures/tiktoken/: a small synthetic Kimi-format tokenizer and expected encodings.

Independent of webmoe's TypeScript: the pre-tokenizer is kimi-tok's pat_str run by Python's `regex` module
(which has `&&` and `(?i:)` natively), the BPE is tiktoken's `_byte_pair_merge` loop. The vocabulary is a tiny
BPE trained on a fixed corpus, written in tiktoken.model format (base64 token, rank), with Kimi's special-token
layout (256 reserved ids after the base vocabulary, a few named in tokenizer_config.json).
Run: python3 scripts/make-tiktoken-fixture.py   (needs `pip install regex`)
"""
import base64, collections, json, os, regex

PAT = "|".join([
    r"""[\p{Han}]+""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
RE = regex.compile(PAT, flags=regex.V1)  # V1: `&&` is set intersection (as in tiktoken's Rust fancy-regex)

CORPUS = """The quick brown fox jumps over the lazy dog. It's what we're told; they've seen it, I'm sure, we'll see, he'd know.
Mixture-of-Experts models route each token to a few experts: 384 experts, 8 per token, 1 shared expert.
你好，世界！这是一个测试。深度求索和月之暗面的模型。混合专家模型。
def forward(x):\n    return x * 2 + 1  # comment\n\n\nclass Model:\n    pass\n
Numbers: 1234567890, 3.14159, 2025-11-25, 100%.  Emoji: 😀🎉 and café naïve résumé.
HELLO WORLD'S LOUDEST SHOUT; CamelCaseIdentifiers and snake_case_names.
The the the the the. Tokens, tokens, tokens! Streaming text over WebGPU in the browser.
"""

def bpe_train(corpus, merges):
    words = collections.Counter(m.encode('utf-8') for m in RE.findall(corpus))
    seqs = {w: [bytes([b]) for b in w] for w in words}
    ranks = {bytes([b]): b for b in range(256)}
    for _ in range(merges):
        pairs = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        ranks[a + b] = len(ranks)
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b); i += 2
                else:
                    out.append(s[i]); i += 1
            seqs[w] = out
    return ranks

def byte_pair_merge(piece, ranks):
    # tiktoken's _byte_pair_merge: parts = starts; merge the lowest-ranked adjacent pair, leftmost on ties
    parts = list(range(len(piece) + 1))
    def rank(i):
        return ranks.get(piece[parts[i]:parts[i + 2]], None) if i + 2 < len(parts) else None
    while True:
        best, at = None, -1
        for i in range(len(parts) - 2):
            r = rank(i)
            if r is not None and (best is None or r < best):
                best, at = r, i
        if at < 0:
            break
        del parts[at + 1]
    return [ranks[piece[parts[i]:parts[i + 1]]] for i in range(len(parts) - 1)]

def encode_ordinary(text, ranks):
    out = []
    for m in RE.findall(text):
        b = m.encode('utf-8')
        out.extend([ranks[b]] if b in ranks else byte_pair_merge(b, ranks))
    return out

def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'engine', 'fixtures', 'tiktoken')
    os.makedirs(here, exist_ok=True)
    ranks = bpe_train(CORPUS, 400)
    n = len(ranks)
    with open(os.path.join(here, 'tiktoken.model'), 'w') as f:
        for tok, r in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(tok).decode()} {r}\n")
    # Kimi's named specials at their offsets from num_base_tokens (163584 + k in K2)
    named = {0: '[BOS]', 1: '[EOS]', 2: '<|im_end|>', 3: '<|im_user|>', 4: '<|im_assistant|>', 6: '<|start_header_id|>',
             7: '<|end_header_id|>', 9: '[EOT]', 10: '<|im_system|>', 11: '<|tool_calls_section_begin|>',
             12: '<|tool_calls_section_end|>', 13: '<|tool_call_begin|>', 14: '<|tool_call_argument_begin|>',
             15: '<|tool_call_end|>', 17: '<|im_middle|>', 255: '[PAD]'}
    config = {
        'added_tokens_decoder': {str(n + k): {'content': v, 'lstrip': False, 'normalized': False, 'rstrip': False,
                                               'single_word': False, 'special': True} for k, v in named.items()},
        'bos_token': '[BOS]', 'eos_token': '[EOS]', 'pad_token': '[PAD]', 'unk_token': '[UNK]',
        'tokenizer_class': 'TikTokenTokenizer', 'model_max_length': 131072,
    }
    with open(os.path.join(here, 'tokenizer_config.json'), 'w') as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    specials = {v: n + k for k, v in named.items()}
    for k in range(256):
        specials.setdefault(f"<|reserved_token_{n + k}|>", n + k) if k not in named else None
    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "It's what WE'RE told; THEY'VE seen it, I'M sure, we'LL see, he'D know. Don'ſ",
        "你好，世界！这是一个测试。Mixed你好world和Text",
        "def forward(x):\n    return x * 2 + 1  # comment\n\n\n\tclass Model:\r\n  pass  \n",
        "Numbers: 1234567890 3.14159 2025-11-25 100% 12345678",
        "Emoji 😀🎉👩‍👩‍👧 café naïve résumé Ǆungla ǅx ǆx Ωmega ΣΊΣΥΦΟΣ",
        "ひらがなカタカナ and 한국어 text, Ελληνικά, русский текст",
        "combining: e\u0301 a\u0308 n\u0303; zero-width\u200bspace; nbsp\u00a0here; \u3000ideographic space",
        "   leading spaces and trailing   ",
        "\n\n\nnewlines\r\n\r\nand tabs\t\t\there",
        "!!!??? ... --- *** ### $$$ ((())) [[]] {{}}",
        "CamelCaseIdentifiers HELLO WORLD'S snake_case_names ALLCAPS",
        "The the the the the. Tokens, tokens, tokens!",
        "x" * 300 + " " + "ab" * 200,
    ]
    cases = [{'text': t, 'pieces': RE.findall(t), 'ids': encode_ordinary(t, ranks)} for t in texts]
    special_text = "<|im_user|>user<|im_middle|>Hello<|im_end|><|im_assistant|>assistant<|im_middle|>[EOS] <|reserved_token_%d|>" % (n + 200)
    # allowed_special="all": special text -> ids, the rest encoded as ordinary text
    pat = regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))
    ids, last = [], 0
    for m in pat.finditer(special_text):
        ids += encode_ordinary(special_text[last:m.start()], ranks) + [specials[m.group(0)]]
        last = m.end()
    ids += encode_ordinary(special_text[last:], ranks)
    expected = {
        'num_base_tokens': n,
        'cases': cases,
        'special_case': {'text': special_text, 'ids_allow_special': ids, 'ids_plain': encode_ordinary(special_text, ranks)},
    }
    with open(os.path.join(here, 'expected.json'), 'w') as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print(f"wrote {here}: {n} base tokens, {len(cases)} cases")

main()
