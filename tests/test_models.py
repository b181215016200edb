"""The four input/output shapes and the language model: every parameter's gradient by float64
central differences (dropout masks held fixed), the LM against PyTorch, generation, LM batching."""
import numpy as np
import pytest
import torch

from rnnkit.generate import sample, sample_logits
from rnnkit.gradcheck import numerical_grad, relative_error
from rnnkit.models import (LanguageModel, ManyToMany, ManyToOne, ModelConfig, OneToMany, OneToOne,
                           config_from_dict, evaluate_lm, lm_batches, lm_streams, model_from_config)
from rnnkit.text import CharVocab
from rnnkit.train import generators

T, B = 5, 3


def check_gradients(model, batch, tol=1e-6):
    """Compare model.backward() with central differences of model.loss(batch) for every parameter."""
    rngs = generators(model)
    frozen = {k: g.bit_generator.state for k, g in rngs.items()}
    carried = getattr(model, "state", None)

    def f():
        for k, g in rngs.items():                     # the same dropout masks on every call
            g.bit_generator.state = frozen[k]
        if carried is not None:
            model.state = carried                     # the same carried state on every call
        return model.loss(batch)[0]

    f()
    model.zero_grad()
    model.backward()
    analytic = {name: g.copy() for name, _, g in model.named_parameters()}
    for name, p, _ in model.named_parameters():
        err = relative_error(analytic[name], numerical_grad(f, p))
        assert err < tol, f"d{name}: relative error {err:.2e}"


def cfg(**kw):
    base = dict(input_size=4, output_size=3, hidden=3, layers=2, seed=1, dtype="float64")
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("output", ["classes", "real", "binary"])
def test_many_to_many(cell, output, rng):
    model = ManyToMany(cfg(cell=cell, output=output, dropout=0.3, variational=cell == "gru"))
    x = rng.standard_normal((T, B, 4))
    lengths = np.array([5, 2, 4])
    y = {"classes": rng.integers(0, 3, (T, B)), "real": rng.standard_normal((T, B, 3)),
         "binary": (rng.random((T, B, 3)) < 0.5).astype(float)}[output]
    check_gradients(model, (x, y, lengths))
    _, n = model.loss((x, y, lengths))
    assert n == 11, "n_items counts unpadded steps"


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_many_to_one_with_tokens(cell, bidirectional, rng):
    model = ManyToOne(cfg(cell=cell, bidirectional=bidirectional, vocab_input=True, input_size=6, embed=2,
                          dropout=0.2))
    ids = rng.integers(0, 6, (T, B))
    check_gradients(model, (ids, rng.integers(0, 3, B), np.array([2, 5, 3])))


def test_many_to_one_reads_each_sequence_end(rng):
    """The summary of a padded sequence equals that of the same sequence unpadded."""
    model = ManyToOne(cfg(cell="lstm", bidirectional=True, dtype="float64")).eval()
    x = rng.standard_normal((T, 2, 4))
    full = model.forward(x, lengths=np.array([5, 3]))
    alone = model.forward(x[:3, 1:2])
    np.testing.assert_allclose(full[1], alone[0], rtol=1e-12)


def test_one_to_one(rng):
    for vocab in (False, True):
        model = OneToOne(cfg(cell="lstm", layers=1, vocab_input=vocab, input_size=4))
        x = rng.integers(0, 4, B) if vocab else rng.standard_normal((B, 4))
        check_gradients(model, (x, rng.integers(0, 3, B)))


@pytest.mark.parametrize("seed_vocab", [False, True])
def test_one_to_many(seed_vocab, rng):
    model = OneToMany(cfg(cell="gru", vocab_input=True, input_size=5, output_size=5, embed=2, dropout=0.1),
                      seed_size=4, seed_vocab=seed_vocab)
    seed = rng.integers(0, 4, B) if seed_vocab else rng.standard_normal((B, 4))
    check_gradients(model, (seed, rng.integers(0, 5, (T, B)), np.array([5, 1, 3])))
    model.eval()
    a = model.generate(seed, 7, temperature=0.7, rng=np.random.default_rng(3))
    b = model.generate(seed, 7, temperature=0.7, rng=np.random.default_rng(3))
    assert a.shape == (7, B) and np.array_equal(a, b)


def test_language_model_gradients_and_state(rng):
    model = LanguageModel(cfg(cell="lstm", vocab_input=True, input_size=6, output_size=6, embed=3))
    x, y = rng.integers(0, 6, (T, B)), rng.integers(0, 6, (T, B))
    model.loss((x, y))
    assert model.state is not None and model.state[0].shape == (2, B, 3)
    check_gradients(model, (x, y))                    # the carried state is a constant: no gradient
    saved = model.extra_state()
    model.reset_state()
    assert model.state is None and model.extra_state() == {}
    model.load_extra_state(saved)
    assert np.array_equal(model.state[1], saved["c"])


def test_language_model_matches_torch(rng):
    """Embedding -> 2-layer LSTM -> Linear with the same weights as torch, carried state included."""
    model = LanguageModel(ModelConfig(input_size=7, output_size=7, vocab_input=True, embed=4, hidden=5, layers=2,
                                      seed=0, dtype="float64"))
    emb, lstm, head = (torch.nn.Embedding(7, 4, dtype=torch.float64), torch.nn.LSTM(4, 5, 2, dtype=torch.float64),
                       torch.nn.Linear(5, 7, dtype=torch.float64))
    sd = {k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()}
    emb.load_state_dict({"weight": sd["embedding.weight"]})
    lstm.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("rnn.")})
    head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")})
    state_t = None
    for _ in range(2):                                 # second batch starts from the carried state
        x, y = rng.integers(0, 7, (T, B)), rng.integers(0, 7, (T, B))
        model.zero_grad()
        loss, _ = model.loss((x, y))
        model.backward()
        for p in (*emb.parameters(), *lstm.parameters(), *head.parameters()):
            p.grad = None
        out, state_t = lstm(emb(torch.from_numpy(x)), state_t)
        tloss = torch.nn.functional.cross_entropy(head(out).reshape(-1, 7), torch.from_numpy(y.ravel()))
        tloss.backward()
        state_t = tuple(s.detach() for s in state_t)
        assert abs(loss - tloss.item()) < 1e-12
        tgrads = {"embedding.weight": emb.weight.grad, **{"rnn." + k: p.grad for k, p in lstm.named_parameters()},
                  **{"head." + k: p.grad for k, p in head.named_parameters()}}
        for name, _, g in model.named_parameters():
            assert relative_error(g, tgrads[name].numpy()) < 1e-10, name


def test_model_config_round_trip_and_errors():
    model = LanguageModel(ModelConfig(input_size=5, output_size=5, vocab_input=True, hidden=4, seed=3))
    again = model_from_config("LanguageModel", model.config())
    again.load_state_dict(model.state_dict())
    assert again.config() == model.config()
    with pytest.raises(ValueError, match=r"unknown ModelConfig keys \['hiden'\]"):
        config_from_dict(ModelConfig, {"input_size": 3, "output_size": 3, "hiden": 4})
    with pytest.raises(ValueError, match="cell must be one of .* got 'lstn'"):
        ModelConfig(input_size=3, output_size=3, cell="lstn")
    with pytest.raises(ValueError, match="unknown model class 'Nope'"):
        model_from_config("Nope", {})


def test_init_scale():
    model = ManyToMany(ModelConfig(input_size=3, output_size=3, hidden=50, init_scale=0.1))
    for name, p, _ in model.named_parameters():
        assert np.abs(p).max() <= 0.1, name
        if p.size > 100:
            assert np.abs(p).max() > 0.09, name


def test_lm_batches_cover_the_streams():
    ids = np.arange(1000)
    batches = lm_batches(ids, batch=4, unroll=10, seed=0)
    first, again = list(batches(0)), list(batches(0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again)), "deterministic per epoch"
    x, y = first[0]
    assert x.shape == (10, 4) and np.array_equal(y, x + 1)
    assert np.array_equal(first[1][0][0], x[-1] + 1), "the next window continues each stream"
    offsets = {int(list(batches(e))[0][0][0, 0]) for e in range(10)}
    assert len(offsets) > 1, "each epoch starts at its own offset"
    with pytest.raises(ValueError, match="too short for batch 4 and unroll 200"):
        lm_batches(ids, 4, 200)
    xs, ys = lm_streams(ids, 3)
    assert xs.shape == (333, 3) and xs[0, 1] == 333


def test_evaluate_lm_matches_one_pass_and_keeps_state(rng):
    model = LanguageModel(ModelConfig(input_size=5, output_size=5, vocab_input=True, hidden=4, seed=2,
                                      dtype="float64")).eval()
    ids = rng.integers(0, 5, 301)
    model.state = "carried"
    chunked = evaluate_lm(model, ids, batch=3, unroll=7)
    assert model.state == "carried"
    x, y = lm_streams(ids, 3)
    from rnnkit.losses import softmax_cross_entropy
    logits, _ = model.step(x)
    assert abs(chunked["loss"] - softmax_cross_entropy(logits, y)[0]) < 1e-12 and chunked["tokens"] == 300


def test_sample_logits():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]] * 20000))
    ids = sample_logits(logits, 1.0, None, rng)
    np.testing.assert_allclose(np.bincount(ids, minlength=4) / 20000, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    top2 = sample_logits(logits, 1.0, 2, rng)
    assert set(top2) == {2, 3} and abs((top2 == 3).mean() - 4 / 7) < 0.015
    assert (sample_logits(logits[:3], 0, None, rng) == 3).all()
    cold = sample_logits(logits, 0.25, None, rng)
    assert (cold == 3).mean() > 0.6
    with pytest.raises(ValueError, match="temperature must be a number >= 0, got -1"):
        sample_logits(logits, -1)


def test_sample_text_is_seeded_and_checks_prime():
    vocab = CharVocab.build("abc de")
    model = LanguageModel(ModelConfig(input_size=len(vocab), output_size=len(vocab), vocab_input=True, hidden=8))
    a = sample(model, vocab, "ab", 30, temperature=0.8, seed=5)
    assert a == sample(model, vocab, "ab", 30, temperature=0.8, seed=5)
    assert a.startswith("ab") and len(a) == 32 and set(a) <= set("abc de")
    assert model.training, "sampling leaves the training mode as it was"
    with pytest.raises(ValueError, match=r"the prime string has 2 symbol\(s\) outside the vocabulary: 'X', 'z'"):
        sample(model, vocab, "abXz", 5)
