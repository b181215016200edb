"""The encoder-decoder, every attention variant: each parameter's gradient by float64 central
differences (dropout masks held fixed) and against a PyTorch re-implementation of the same forward
with copied weights (torch.nn.GRU/LSTM with packed sequences, torch.nn.GRUCell, autograd); the
decoding step against teacher forcing."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.gradcheck import numerical_grad
from rnnkit.losses import log_softmax
from rnnkit.seq2seq import Seq2Seq
from rnnkit.train import generators

VS, VT, S, B, T = 7, 6, 5, 3, 4
SRC_LEN = np.array([5, 2, 3])
TGT_LEN = np.array([4, 1, 3])
VARIANTS = ["none", "additive", "dot", "general"]


def tiny(attention, encoder="gru", dropout=0.0, dtype=np.float64):
    # dec_hidden = 2 * enc_hidden so that dot attention applies
    m = Seq2Seq(VS, VT, embed=3, enc_hidden=2, dec_hidden=4, attn_size=3, out_size=5, attention=attention,
                encoder=encoder, dropout=dropout, seed=1, dtype=dtype)
    if attention != "none":
        for _, p, _ in m.attn.named_parameters():
            p *= 3.0                                  # attention gradients well above rounding noise
    return m


def make_batch(rng):
    src = rng.integers(0, VS, (S, B))
    tgt_in = rng.integers(0, VT, (T, B))
    tgt_out = rng.integers(0, VT, (T, B))
    mask = (np.arange(T)[:, None] < TGT_LEN[None, :]).astype(np.float64)
    return src, SRC_LEN, tgt_in, tgt_out, mask


def check_gradients(model, batch):
    rngs = generators(model)
    frozen = {k: g.bit_generator.state for k, g in rngs.items()}

    def f():
        for k, g in rngs.items():                     # the same dropout masks on every call
            g.bit_generator.state = frozen[k]
        return model.loss(batch)[0]

    f()
    model.zero_grad()
    model.backward()
    for name, p, g in model.named_parameters():
        num = numerical_grad(f, p)
        err = np.abs(g - num).max()
        assert err <= 1e-9 + 1e-6 * np.abs(num).max(), f"d{name}: max abs error {err:.2e}"


@pytest.mark.parametrize("attention", VARIANTS)
def test_finite_differences(attention, rng):
    check_gradients(tiny(attention), make_batch(rng))


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_finite_differences_lstm_encoder_with_dropout(attention, rng):
    check_gradients(tiny(attention, encoder="lstm", dropout=0.3), make_batch(rng))


def torch_loss(m, batch):
    """The same forward in PyTorch; returns (loss, {rnnkit name: torch leaf})."""
    src, src_len, tgt_in, tgt_out, mask = batch
    leaves = {name: torch.tensor(p, requires_grad=True) for name, p, _ in m.named_parameters()
              if not name.startswith(("encoder.", "cell."))}
    rnn = (torch.nn.GRU if m.args["encoder"] == "gru" else torch.nn.LSTM)(
        m.E, m.He, bidirectional=True, dtype=torch.float64)
    rnn.load_state_dict({k: torch.tensor(v) for k, v in m.encoder.state_dict().items()})
    cell = torch.nn.GRUCell(m.E + m.K, m.Hd, dtype=torch.float64)
    cell.load_state_dict({k: torch.tensor(v) for k, v in m.cell.state_dict().items()})
    leaves.update({"encoder." + k: p for k, p in rnn.named_parameters()})
    leaves.update({"cell." + k: p for k, p in cell.named_parameters()})
    P = leaves
    es = F.embedding(torch.tensor(src), P["src_embed.weight"])
    packed = torch.nn.utils.rnn.pack_padded_sequence(es, torch.tensor(src_len), enforce_sorted=False)
    out, h_n = rnn(packed)
    h, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=S)
    h_n = h_n[0] if isinstance(h_n, tuple) else h_n
    z = torch.cat([h_n[0], h_n[1]], dim=1)
    s = torch.tanh(F.linear(z, P["init.weight"], P["init.bias"]))
    smask = torch.tensor(np.arange(S)[:, None] < src_len[None, :])
    et = F.embedding(torch.tensor(tgt_in), P["tgt_embed.weight"])
    feats = []
    for t in range(T):
        if m.attention == "none":
            c = z
        else:
            if m.attention == "additive":
                e = torch.tanh(s @ P["attn.W_q"].T + h @ P["attn.W_k"].T + P["attn.b"]) @ P["attn.v"]
            elif m.attention == "dot":
                e = (s[None] * h).sum(-1)
            else:
                e = (s[None] * (h @ P["attn.W_a"].T)).sum(-1)
            alpha = torch.softmax(e.masked_fill(~smask, -torch.inf), dim=0)
            c = (alpha[:, :, None] * h).sum(0)
        s = cell(torch.cat([et[t], c], dim=1), s)
        feats.append(torch.cat([s, c, et[t]], dim=1))
    o = torch.tanh(F.linear(torch.stack(feats), P["pre.weight"], P["pre.bias"]))
    logits = F.linear(o, P["out.weight"], P["out.bias"])
    nll = F.cross_entropy(logits.reshape(-1, m.args["tgt_vocab"]), torch.tensor(tgt_out).reshape(-1),
                          reduction="none")
    w = torch.tensor(mask).reshape(-1)
    return (nll * w).sum() / w.sum(), leaves


@pytest.mark.parametrize("encoder", ["gru", "lstm"])
@pytest.mark.parametrize("attention", VARIANTS)
def test_against_torch(attention, encoder, rng):
    m = tiny(attention, encoder)
    batch = make_batch(rng)
    loss, n = m.loss(batch)
    assert n == TGT_LEN.sum(), "n_items counts real target tokens"
    m.zero_grad()
    m.backward()
    tloss, leaves = torch_loss(m, batch)
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-12, f"loss {loss} vs torch {tloss.item()}"
    assert set(leaves) == {name for name, _, _ in m.named_parameters()}
    for name, _, g in m.named_parameters():
        np.testing.assert_allclose(g, leaves[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"d{name}")


@pytest.mark.parametrize("attention", VARIANTS)
def test_step_matches_teacher_forcing(attention, rng):
    """Decoding one step at a time gives the teacher-forced log-probabilities (eval mode)."""
    m = tiny(attention, dropout=0.5).eval()
    src, src_len, tgt_in, _, _ = make_batch(rng)
    logits = m.forward(src, src_len, tgt_in)
    memory = m.encode(src, src_len)
    s = memory["s0"]
    for t in range(T):
        logp, s, alpha = m.step(tgt_in[t], s, memory)
        np.testing.assert_allclose(logp, log_softmax(logits[t]), rtol=1e-10, atol=1e-12, err_msg=f"step {t}")
        assert (alpha is None) == (attention == "none")


def test_float32_trains(rng):
    """A few Adam steps on one batch in float32 lower its loss."""
    from rnnkit.optim import Adam

    m = tiny("additive", dtype=np.float32, dropout=0.1)
    batch = make_batch(rng)
    opt = Adam(m, lr=0.05)
    first = None
    for _ in range(30):
        m.zero_grad()
        loss, _ = m.loss(batch)
        first = loss if first is None else first
        m.backward()
        opt.step()
    assert loss < 0.5 * first, f"loss went from {first:.3f} to {loss:.3f}"
    assert all(p.dtype == np.float32 for _, p, _ in m.named_parameters())


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="attention must be one of .* got 'luong'"):
        Seq2Seq(5, 5, attention="luong")
    with pytest.raises(ValueError, match="encoder must be one of .* got 'rnn'"):
        Seq2Seq(5, 5, encoder="rnn")
    with pytest.raises(ValueError, match="query_size=8 and key_size=6"):
        Seq2Seq(5, 5, enc_hidden=3, dec_hidden=8, attention="dot")
    with pytest.raises(ValueError, match="backward\\(\\) called before loss\\(\\)"):
        Seq2Seq(5, 5, embed=2, enc_hidden=2, dec_hidden=2, attn_size=2, out_size=2).backward()
