#!/usr/bin/env python3
"""Would fine-tuning the sentence encoder lift the few-shot router? A measurement, not product code.

The understanding issue's Banking77 targets (88 / 92% at 10 / 30 examples per intent) are above
what logistic regression on frozen all-MiniLM-L6-v2 embeddings reaches (about 85 / 90%). The
idea it names is SetFit-style tuning of the encoder on the dialplan's own examples. voxnav's
pure-Rust encoder has no backward pass, so before writing one this probe measures what tuning
would buy, with JAX's autodiff on the same weights (`voxnav models install` puts them in
models/cache/minilm). Results and the decision are in docs/nlu.md ("Tuning the encoder").

For each seed: sample k examples per intent, embed, score logistic regression on the test set
(the baseline), tune the top `--layers` encoder layers on the sampled examples only, embed again,
score logistic regression again. Layers below the tuned ones are run once and cached.

Losses:
  supcon  supervised contrastive (Khosla et al. 2020) on batches of 128 examples, temperature 0.05
  setfit  SetFit's pairs (Tunstall et al. 2022): cosine similarity regressed to 1 (same intent)
          or 0 (different), one positive and one negative pair per example per iteration
  ce      cross-entropy through a cosine classifier (scale 20) started at the intents' centroids

Setup (a throwaway virtualenv; nothing here is needed to build or run voxnav):
  python3 -m venv /tmp/probe && /tmp/probe/bin/pip install "jax[cpu]" numpy safetensors tokenizers scikit-learn
  /tmp/probe/bin/python scripts/encoder-tuning-probe.py --shots 10 --loss supcon --layers 1 --lr 2e-4
About 40 s per seed at 10 shots with one tuned layer on 2 cores.
"""

import argparse
import csv
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression
from tokenizers import BertWordPieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HIDDEN, HEADS, MAX_TOKENS = 384, 12, 48

args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
args.add_argument("--shots", type=int, default=10)
args.add_argument("--seeds", default="0,1,2")
args.add_argument("--loss", choices=["supcon", "setfit", "ce"], default="supcon")
args.add_argument("--layers", type=int, default=1, help="top encoder layers tuned (1-6)")
args.add_argument("--epochs", type=int, default=10)
args.add_argument("--lr", type=float, default=2e-4)
args.add_argument("--setfit-iterations", type=int, default=5)
opts = args.parse_args()

models = os.environ.get("VOXNAV_MODELS_DIR", os.path.join(ROOT, "models/cache"))
W = load_file(os.path.join(models, "minilm/model.safetensors"))
tokenizer = BertWordPieceTokenizer(os.path.join(models, "minilm/vocab.txt"), lowercase=True)


def rows(name):
    with open(os.path.join(ROOT, "../shared/data/banking77", name)) as f:
        data = list(csv.reader(f))[1:]
    return [t for t, _ in data], [c for _, c in data]


train_texts, train_intents = rows("train.csv")
test_texts, test_intents = rows("test.csv")
intents = sorted(set(train_intents))
test_labels = np.array([intents.index(c) for c in test_intents])


def layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + 1e-12) * p[0] + p[1]


def linear(x, p):
    return x @ p[0].T + p[1]


def weights(prefix):
    return (jnp.asarray(W[prefix + ".weight"]), jnp.asarray(W[prefix + ".bias"]))


def encoder_layer(l):
    p = f"encoder.layer.{l}."
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
        "up": "intermediate.dense", "down": "output.dense", "ln2": "output.LayerNorm",
    }
    return {key: weights(p + name) for key, name in names.items()}


def layer_forward(p, x, mask):
    batch, tokens, _ = x.shape
    heads = lambda t: t.reshape(batch, tokens, HEADS, -1).transpose(0, 2, 1, 3)
    q, k, v = heads(linear(x, p["q"])), heads(linear(x, p["k"])), heads(linear(x, p["v"]))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HIDDEN // HEADS)
    scores = scores + (1 - mask[:, None, None, :]) * -1e9
    context = (jax.nn.softmax(scores, -1) @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, HIDDEN)
    x = layer_norm(x + linear(context, p["o"]), p["ln1"])
    hidden = jax.nn.gelu(linear(x, p["up"]), approximate=False)
    return layer_norm(x + linear(hidden, p["down"]), p["ln2"])


LAYERS = [encoder_layer(l) for l in range(6)]
FROZEN = 6 - opts.layers
EMBEDDINGS = {name: jnp.asarray(W[f"embeddings.{name}.weight"])
              for name in ["word_embeddings", "position_embeddings", "token_type_embeddings"]}
EMBEDDING_NORM = weights("embeddings.LayerNorm")


def tokens(texts):
    ids = np.zeros((len(texts), MAX_TOKENS), np.int32)
    mask = np.zeros((len(texts), MAX_TOKENS), np.float32)
    for i, t in enumerate(texts):
        e = tokenizer.encode(t).ids[:MAX_TOKENS]
        ids[i, :len(e)] = e
        mask[i, :len(e)] = 1
    return ids, mask


@jax.jit
def frozen_states(ids, mask):
    x = (EMBEDDINGS["word_embeddings"][ids] + EMBEDDINGS["position_embeddings"][None, :MAX_TOKENS]
         + EMBEDDINGS["token_type_embeddings"][0])
    x = layer_norm(x, EMBEDDING_NORM)
    for l in range(FROZEN):
        x = layer_forward(LAYERS[l], x, mask)
    return x


def states(texts):
    parts = [tokens(texts[i:i + 256]) for i in range(0, len(texts), 256)]
    return (np.concatenate([np.asarray(frozen_states(ids, mask)) for ids, mask in parts]),
            np.concatenate([mask for _, mask in parts]))


def embed(tuned, x, mask):
    """The tuned layers, mean pooling over the real tokens, L2 normalisation (as voxnav)."""
    for p in tuned:
        x = layer_forward(p, x, mask)
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / jnp.linalg.norm(pooled, axis=-1, keepdims=True)


embed_jit = jax.jit(embed)


def embeddings(tuned, x, mask):
    return np.concatenate([np.asarray(embed_jit(tuned, x[i:i + 512], mask[i:i + 512]))
                           for i in range(0, len(x), 512)])


def accuracy(train_e, labels, test_e):
    # C = 10 is voxnav's L2 = 0.1/n (docs/nlu.md); C = 1 underfits at these sizes.
    classifier = LogisticRegression(max_iter=3000, C=10).fit(train_e, labels)
    return (classifier.predict(test_e) == test_labels).mean()


def supcon_loss(tuned, x, mask, labels, temperature=0.05):
    e = embed(tuned, x, mask)
    n = e.shape[0]
    logp = jax.nn.log_softmax(e @ e.T / temperature - 1e9 * jnp.eye(n), -1)
    positive = (labels[:, None] == labels[None, :]) & ~jnp.eye(n, dtype=bool)
    return -(jnp.where(positive, logp, 0).sum(-1) / jnp.maximum(positive.sum(-1), 1)).mean()


def setfit_loss(tuned, x, mask, a, b, target):
    e = embed(tuned, x, mask)
    return (((e[a] * e[b]).sum(-1) - target) ** 2).mean()


def ce_loss(params, x, mask, labels, scale=20.0):
    tuned, centres = params
    e = embed(tuned, x, mask)
    centres = centres / jnp.linalg.norm(centres, axis=-1, keepdims=True)
    logp = jax.nn.log_softmax(scale * e @ centres.T, -1)
    return -jnp.take_along_axis(logp, labels[:, None], 1).mean()


@jax.jit
def adam(params, grads, state, lr):
    m, v, t = state
    t = t + 1
    m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - lr * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8),
        params, m, v)
    return params, (m, v, t)


def adam_state(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return (zeros, zeros, 0)


grad_supcon = jax.jit(jax.value_and_grad(supcon_loss))
grad_setfit = jax.jit(jax.value_and_grad(setfit_loss))
grad_ce = jax.jit(jax.value_and_grad(ce_loss))


def sample(k, seed):
    rng = np.random.default_rng(seed)
    by_intent = {}
    for t, c in zip(train_texts, train_intents):
        by_intent.setdefault(c, []).append(t)
    texts, labels = [], []
    for i, c in enumerate(intents):
        chosen = rng.permutation(len(by_intent[c]))[:k]
        texts += [by_intent[c][j] for j in chosen]
        labels += [i] * len(chosen)
    return texts, np.array(labels)


def tune(x, mask, labels, rng):
    tuned = LAYERS[FROZEN:]
    n = len(labels)
    if opts.loss == "ce":
        e = embeddings(tuned, x, mask)
        centres = jnp.asarray(np.stack([e[labels == c].mean(0) for c in range(len(intents))]))
        params = (tuned, centres)
        state = adam_state(params)
        for _ in range(opts.epochs):
            order = rng.permutation(n)
            for s in range(0, n - 127, 128):
                idx = order[s:s + 128]
                _, g = grad_ce(params, x[idx], mask[idx], labels[idx])
                params, state = adam(params, g, state, opts.lr)
        return params[0]
    state = adam_state(tuned)
    for _ in range(opts.epochs):
        if opts.loss == "supcon":
            order = rng.permutation(n)
            for s in range(0, n - 127, 128):
                idx = order[s:s + 128]
                _, g = grad_supcon(tuned, x[idx], mask[idx], labels[idx])
                tuned, state = adam(tuned, g, state, opts.lr)
            continue
        pairs = []
        for _ in range(opts.setfit_iterations):
            for i in range(n):
                pairs.append((i, rng.choice(np.flatnonzero(labels == labels[i])), 1.0))
                pairs.append((i, rng.choice(np.flatnonzero(labels != labels[i])), 0.0))
        pairs = [pairs[j] for j in rng.permutation(len(pairs))]
        for s in range(0, len(pairs), 16):
            batch = pairs[s:s + 16]
            # The distinct sentences of 16 pairs, padded to a fixed 32 so JAX compiles once.
            used = sorted({i for a, b, _ in batch for i in (a, b)})
            where = {i: j for j, i in enumerate(used)}
            used += [0] * (32 - len(used))
            a = np.array([where[p[0]] for p in batch])
            b = np.array([where[p[1]] for p in batch])
            target = np.array([p[2] for p in batch], np.float32)
            _, g = grad_setfit(tuned, x[used], mask[used], a, b, target)
            tuned, state = adam(tuned, g, state, opts.lr)
    return tuned


test_x, test_mask = states(test_texts)
results = []
for seed in [int(s) for s in opts.seeds.split(",")]:
    texts, labels = sample(opts.shots, seed)
    x, mask = states(texts)
    frozen = LAYERS[FROZEN:]
    before = accuracy(embeddings(frozen, x, mask), labels, embeddings(frozen, test_x, test_mask))
    started = time.time()
    tuned = tune(x, mask, labels, np.random.default_rng(seed + 100))
    seconds = time.time() - started
    after = accuracy(embeddings(tuned, x, mask), labels, embeddings(tuned, test_x, test_mask))
    results.append((before, after))
    print(f"shots={opts.shots} seed={seed} loss={opts.loss} layers={opts.layers} lr={opts.lr} "
          f"epochs={opts.epochs}: LR before {100 * before:.1f}%, after {100 * after:.1f}% "
          f"({seconds:.0f} s tuning)", flush=True)
before, after = np.mean(results, axis=0)
print(f"mean of {len(results)} seeds: {100 * before:.1f}% -> {100 * after:.1f}% "
      f"({100 * (after - before):+.1f} points)")
