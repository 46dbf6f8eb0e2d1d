"""A small byte-level BPE trainer and encoder that writes a Hugging Face `tokenizer.json`.

No HF tokenizer trainer is installable here, so this is our own (issue #15). The format it writes is the one
webmoe's HfTokenizer loads through @huggingface/tokenizers (src/text/hf-tokenizer.ts):

  pre_tokenizer  Sequence[ Split(PATTERN, Isolated), ByteLevel(use_regex=false) ]
  model          BPE, vocab = 256 byte symbols (GPT-2 ByteLevel alphabet, id = byte) + specials + merges
  post_processor TemplateProcessing: <|bos|> $A  (encode with add_special_tokens adds BOS)
  decoder        ByteLevel

PATTERN is ASCII-only and uses no \\s, \\w or \\p{..}, so Python's `re` and the JS RegExp the library builds
split every text identically (a code-friendly variant of GPT-2's: identifiers keep their underscores and digits,
indentation runs become their own pieces, leaving the last space to the next word).

Ids: 0..255 bytes, 256 <|bos|>, 257 <|eos|>, 258.. merges in rank order.
"""
import collections
import json
import re

PATTERN = r" ?[A-Za-z_][A-Za-z0-9_]*| ?[0-9]+| ?[^ \t\n\rA-Za-z0-9_]+|[ \t\n\r]+(?![^ \t\n\r])|[ \t\n\r]+"
SPLIT = re.compile(PATTERN)
BOS, EOS = "<|bos|>", "<|eos|>"
BOS_ID, EOS_ID = 256, 257
FIRST_MERGE_ID = 258


def byte_alphabet():
    """GPT-2's byte -> printable character map (same as src/model/toy.ts byteLevelAlphabet)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


def pieces(text):
    return SPLIT.findall(text)


def train(texts, vocab_size, min_count=2, log=print):
    """Returns the merges [(a_id, b_id)] in rank order; ids as described in the module docstring."""
    words = collections.Counter()
    for t in texts:
        words.update(pieces(t))
    seqs = [list(w.encode("utf-8")) for w in words]
    freqs = list(words.values())
    pair_count = collections.Counter()
    where = collections.defaultdict(set)  # pair -> word indices containing it
    for i, (s, f) in enumerate(zip(seqs, freqs)):
        for p in zip(s, s[1:]):
            pair_count[p] += f
            where[p].add(i)
    merges = []
    next_id = FIRST_MERGE_ID
    while next_id < vocab_size:
        if not pair_count:
            break
        # most frequent pair; ties -> smallest pair (deterministic)
        best = max(pair_count.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        pair, count = best
        if count < min_count:
            break
        merges.append(pair)
        a, b = pair
        for i in list(where[pair]):
            s, f = seqs[i], freqs[i]
            for p in zip(s, s[1:]):
                pair_count[p] -= f
                if pair_count[p] <= 0:
                    del pair_count[p]
            out = []
            j = 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                    out.append(next_id)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
            for p in zip(out, out[1:]):
                pair_count[p] += f
                where[p].add(i)
        del where[pair]
        pair_count.pop(pair, None)
        next_id += 1
        if len(merges) % 500 == 0:
            log(f"bpe: {len(merges)} merges, last count {count}")
    return merges


class Encoder:
    """Encodes text with the merges exactly as HF's BPE model does (lowest-rank pair first, per piece)."""

    def __init__(self, merges):
        self.rank = {p: r for r, p in enumerate(merges)}
        self.cache = {}

    def encode_piece(self, w):
        ids = self.cache.get(w)
        if ids is not None:
            return ids
        s = list(w.encode("utf-8"))
        while len(s) > 1:
            best, at = None, -1
            for j in range(len(s) - 1):
                r = self.rank.get((s[j], s[j + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, j
            if best is None:
                break
            s = s[:at] + [FIRST_MERGE_ID + best] + s[at + 2:]
        self.cache[w] = s
        return s

    def encode(self, text, bos=True):
        out = [BOS_ID] if bos else []
        for w in pieces(text):
            out.extend(self.encode_piece(w))
        return out


def token_strings(merges):
    alpha = byte_alphabet()
    strs = {b: alpha[b] for b in range(256)}
    for r, (a, b) in enumerate(merges):
        strs[FIRST_MERGE_ID + r] = strs[a] + strs[b]
    return strs


def tokenizer_json(merges):
    strs = token_strings(merges)
    vocab = {s: i for i, s in strs.items()}
    special = lambda i, c: {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(BOS_ID, BOS), special(EOS_ID, EOS)],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PATTERN}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [BOS_ID], "tokens": [BOS]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[strs[a], strs[b]] for a, b in merges],
        },
    }


def tokenizer_config(max_length):
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_length,
    }


def save(merges, folder, max_length):
    with open(f"{folder}/tokenizer.json", "w") as f:
        json.dump(tokenizer_json(merges), f, ensure_ascii=False)
    with open(f"{folder}/tokenizer_config.json", "w") as f:
        json.dump(tokenizer_config(max_length), f, indent=1)
