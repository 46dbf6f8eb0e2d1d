"""The corpus: the Python standard library sources Debian ships (/usr/lib/python3.X/**/*.py, PSF License).

The split is by file and fixed: a file is held out when the first 8 hex digits of sha1(relative path) are below
HELD_OUT_FRACTION of 2^32 and it is at most 48 KiB (so no single file dominates the held-out numbers); the list is
written to models/demo/heldout.txt and `webmoe eval --text` reads those files. Files over 256 KiB (generated
tables) and undecodable files are skipped everywhere.

The evaluation set of the quality table is the held-out files of at most EVAL_MAX_FILE bytes (six files, 63 KiB):
the three larger held-out files stay out of training but are not evaluated, so that an evaluation on webmoe's CPU
reference (plain TypeScript, about 100 tokens/s on this shared machine) takes minutes, not an hour.
"""
import glob
import hashlib
import os

HELD_OUT_FRACTION = 0.02
MAX_FILE = 256 * 1024
MAX_HELD_OUT_FILE = 48 * 1024
EVAL_MAX_FILE = 24 * 1024


def default_root():
    roots = sorted(glob.glob("/usr/lib/python3.[0-9]*"), key=lambda p: [int(x) for x in p.rsplit("python", 1)[1].split(".")])
    if not roots:
        raise SystemExit("corpus: no /usr/lib/python3.* found (apt-get install python3)")
    return roots[-1]


def list_files(root):
    """(relative path, text) of every usable .py file under root, sorted by path."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__"))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or os.path.getsize(path) > MAX_FILE or os.path.getsize(path) == 0:
                continue
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append((os.path.relpath(path, root), text))
    out.sort()
    return out


def is_held_out(rel, size):
    h = int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16)
    return h < HELD_OUT_FRACTION * 2**32 and size <= MAX_HELD_OUT_FILE


def split(files):
    train, held = [], []
    for rel, text in files:
        (held if is_held_out(rel, len(text.encode("utf-8"))) else train).append((rel, text))
    return train, held


def eval_set(held):
    """The held-out files the quality table is measured on."""
    return [(rel, text) for rel, text in held if len(text.encode("utf-8")) <= EVAL_MAX_FILE]
