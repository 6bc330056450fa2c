"""PyTorch adapter: eager mode, NCHW convolutions, fused log-softmax/cross-entropy on logits.

Traps between PyTorch and the canonical (Keras) layout, handled here:
- Images arrive NHWC; `prepare` makes them NCHW once. nn.Flatten then flattens in (C, H, W) order,
  Keras in (H, W, C): the rows of the Dense kernel after Flatten are permuted on get/set.
- nn.Linear stores (out, in), Conv2d OIHW, nn.LSTM (4h, in): transposed on get/set.
- nn.LSTM keeps two biases (bias_ih, bias_hh); Keras one. Both trainable is a different model under
  Adam: each vector moves by about lr per step, so their sum moves twice as fast (10 steps diverged by
  5e-2 from Keras, harness.py parity). bias_hh is frozen at zero: the trainable parameters are
  Keras's. Exported as the sum, imported into bias_ih. Gate order i, f, g, o is the canonical one.
- Initialisers are PyTorch's own (Kaiming-uniform) by default: Keras's are set explicitly.
- Adam's eps defaults to 1e-8 in PyTorch and is added after bias correction, Keras's before: the
  recipe's 1e-7 is rescaled each step so that the step is Keras's (_keras_eps).
The network returns logits; `predict` applies the softmax/sigmoid, so outputs are probabilities.
Tiers. default: eager, torch.optim.Adam as constructed (its foreach implementation). The tuned tier is
the candidate `harness.py tune` measured fastest here (frameworks/__init__.py lists them, with PyTorch's
documentation): Adam(fused=True) alone, or with the network's forward under torch.compile in mode
"default", "max-autotune-no-cudagraphs" or (a GPU only) "reduce-overhead". Not nn.Module.compile(): in
torch 2.13 it compiled nothing here (dynamo's frame counter stayed at 0), while torch.compile(net.forward)
compiles; the network stays an nn.Sequential, so weight mapping and parameter counts hold unchanged.
channels_last memory format was measured on the MNIST CNN (2 threads): no gain beyond noise, so NCHW.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tasks.spec import (
    LSTM,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    LayerNorm,
    MaxPool2D,
    MultiHeadAttention,
    Residual,
    Task,
    TokenAndPositionEmbedding,
    input_shapes,
    layer_key,
    nchw_flatten_rows,
    shapes_through,
    top_level_key,
)

LSTM_BIAS_VECTORS = 1  # trainable: bias_hh is stored but frozen at zero
_device = torch.device("cpu")
_precision = "fp32"
# tier -> (torch.compile mode or None: eager, Adam(fused=True)); the names are frameworks.TORCH_CANDIDATES'
CANDIDATES = {
    "default": (None, False),
    "fused-adam": (None, True),
    "compile": ("default", True),
    "compile-max-autotune": ("max-autotune-no-cudagraphs", True),
    "compile-reduce-overhead": ("reduce-overhead", True),
}
_mode, _fused = CANDIDATES["default"]


class _LastHidden(nn.Module):
    """An LSTM that returns its last hidden state, as Keras's LSTM(return_sequences=False)."""

    def __init__(self, n_in: int, units: int):
        super().__init__()
        self.lstm = nn.LSTM(n_in, units, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[1][0][-1]  # h_n of the (only) layer: (batch, units)


class _TokenAndPosition(nn.Module):
    """Token embedding plus a learned embedding of positions 0..T-1 (Keras's Transformer example)."""

    def __init__(self, layer: TokenAndPositionEmbedding):
        super().__init__()
        self.token, self.position = nn.Embedding(layer.vocab, layer.dim), nn.Embedding(layer.maxlen, layer.dim)

    def forward(self, x):
        return self.token(x) + self.position.weight[: x.shape[1]]


class _SelfAttention(nn.Module):
    """Keras's MultiHeadAttention(heads, key_dim) as self-attention, on F.scaled_dot_product_attention.

    Not nn.MultiheadAttention: it ties each head's width to embed_dim / num_heads (16 here), while the
    Keras example's heads are key_dim = 32 wide each (64 in all) on a 32-wide input; kdim/vdim only
    change the key and value inputs. So the four projections are nn.Linear layers and the attention
    is the fused kernel nn.MultiheadAttention itself calls (scale 1/sqrt(key_dim), no mask)."""

    def __init__(self, d: int, layer: MultiHeadAttention):
        super().__init__()
        self.heads, self.key_dim = layer.heads, layer.key_dim
        width = layer.heads * layer.key_dim
        self.query, self.key, self.value = (nn.Linear(d, width) for _ in range(3))
        self.output = nn.Linear(width, d)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (
            p(x).view(b, n, self.heads, self.key_dim).transpose(1, 2) for p in (self.query, self.key, self.value)
        )
        o = F.scaled_dot_product_attention(q, k, v)  # (b, heads, n, key_dim)
        return self.output(o.transpose(1, 2).reshape(b, n, self.heads * self.key_dim))


class _Residual(nn.Module):
    def __init__(self, body: nn.Sequential):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class _MeanOverTime(nn.Module):
    def forward(self, x):
        return x.mean(dim=1)  # GlobalAveragePooling1D, no mask (padding counts, as in the example)


@dataclass
class Model:
    net: nn.Sequential
    opt: torch.optim.Optimizer
    task: Task
    keyed: list  # (canonical layer key, module) of every layer with weights, nested ones included
    steps: int = 0  # Adam steps taken, for Keras's epsilon placement (see _keras_eps)


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "mkldnn": str(torch.backends.mkldnn.is_available())}


def configure(
    threads: int, device: str, precision: str = "fp32", deterministic: bool = False, tier: str = "default"
) -> str:
    global _device, _precision, _mode, _fused
    if tier not in CANDIDATES:
        raise ValueError(f"torch has no tier {tier!r}: one of {', '.join(CANDIDATES)}")
    _mode, _fused = CANDIDATES[tier]
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    want_gpu = device in ("gpu", "cuda") or (device == "auto" and torch.cuda.is_available())
    if want_gpu and not torch.cuda.is_available():
        raise RuntimeError("--device gpu asked for, but torch sees no CUDA device")
    _device, _precision = torch.device("cuda" if want_gpu else "cpu"), precision
    # PyTorch's defaults: TF32 on in cuDNN convolutions, off in cuBLAS matmuls. One policy for both.
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    if deterministic:  # cuDNN's convolution backward is not deterministic by default
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    return str(_device)


def _autocast():
    """bf16: PyTorch's autocast (bf16 compute where it is safe, fp32 weights); fp32/tf32: off."""
    return torch.autocast(_device.type, dtype=torch.bfloat16, enabled=_precision == "bf16")


def _modules(layers, shapes, prefix: str, keyed: list) -> list[nn.Module]:
    """The modules of a layer list (a Residual's body too), recording each weighted one's canonical key."""
    mods = []
    for i, (layer, shape) in enumerate(zip(layers, shapes, strict=False)):
        key = prefix + layer_key(i, layer)
        if isinstance(layer, Dense):
            m = nn.Linear(shape[-1], layer.units)
        elif isinstance(layer, Conv2D):
            m = nn.Conv2d(shape[-1], layer.filters, layer.kernel)  # VALID, stride 1
        elif isinstance(layer, MaxPool2D):
            m = nn.MaxPool2d(layer.pool)
        elif isinstance(layer, Flatten):
            m = nn.Flatten()  # (C, H, W) order: see nchw_flatten_rows on get/set
        elif isinstance(layer, Dropout):
            m = nn.Dropout(layer.rate)
        elif isinstance(layer, Embedding):
            m = nn.Embedding(layer.vocab, layer.dim)
        elif isinstance(layer, LSTM):
            m = _LastHidden(shape[-1], layer.units)
        elif isinstance(layer, TokenAndPositionEmbedding):
            m = _TokenAndPosition(layer)
        elif isinstance(layer, MultiHeadAttention):
            m = _SelfAttention(shape[-1], layer)
        elif isinstance(layer, LayerNorm):
            m = nn.LayerNorm(shape[-1], eps=layer.eps)  # torch's default eps is 1e-5, the example's 1e-6
        elif isinstance(layer, GlobalAveragePooling1D):
            m = _MeanOverTime()
        elif isinstance(layer, Residual):
            m = _Residual(nn.Sequential(*_modules(layer.layers, shapes_through(layer.layers, shape), key + ".", keyed)))
        else:
            raise ValueError(f"the torch adapter cannot build {type(layer).__name__}")
        if not isinstance(layer, Residual) and any(p.requires_grad for p in m.parameters()):
            keyed.append((key, m))
        mods.append(m)
        if getattr(layer, "activation", "linear") == "relu":
            mods.append(nn.ReLU())  # softmax/sigmoid live in the loss and in predict
    return mods


def build(task: Task, seed: int) -> Model:
    torch.manual_seed(seed)  # seeds the initialisers and dropout
    keyed: list = []
    net = nn.Sequential(*_modules(task.layers, input_shapes(task), "", keyed)).to(_device)
    _init_like_keras(net)
    r = task.recipe
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=r.lr, betas=(r.beta1, r.beta2), eps=r.eps, fused=True if _fused else None)
    if _mode:
        net.forward = torch.compile(net.forward, mode=_mode)  # parameters stay the module's
    return Model(net, opt, task, keyed)


def settings() -> dict[str, str]:
    return {
        "execution": f"torch.compile(forward, mode={_mode!r}), inductor" if _mode else "eager",
        "optimizer": "torch.optim.Adam(fused=True)" if _fused else "torch.optim.Adam (default: foreach)",
        "data_placement": f"{_device.type} tensors, prepared once before the clock",
        "threads": f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op",
    }


@torch.no_grad()
def _init_like_keras(net: nn.Module) -> None:
    """Keras defaults: Glorot-uniform kernels, zero biases, orthogonal recurrent kernel, forget bias 1;
    LayerNorm gamma 1, beta 0. An attention's projections are Linear layers whose (heads * key_dim, d)
    weights have the fans Keras's EinsumDense gives its (d, heads, key_dim) kernels."""
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)  # same fans as Keras: OIHW/(out, in) vs HWIO/(in, out)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.uniform_(m.weight, -0.05, 0.05)
        elif isinstance(m, nn.LSTM):
            h = m.hidden_size
            nn.init.xavier_uniform_(m.weight_ih_l0)
            nn.init.orthogonal_(m.weight_hh_l0)
            nn.init.zeros_(m.bias_ih_l0)
            nn.init.zeros_(m.bias_hh_l0)
            m.bias_hh_l0.requires_grad_(False)  # one trainable bias, as Keras (see the module docstring)
            m.bias_ih_l0[h : 2 * h] = 1.0  # unit_forget_bias: gate order i, f, g, o
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def prepare(x: np.ndarray, y: np.ndarray | None = None):
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x))
    if t.dtype == torch.int32:
        t = t.long()  # nn.Embedding indexes with int64
    return t.to(_device), (None if y is None else torch.from_numpy(y).to(_device))


def _loss(model: Model, logits, y):
    logits = logits.float()  # the loss in float32, whatever the compute precision
    if model.task.binary:
        logits = logits.squeeze(1)
        return F.binary_cross_entropy_with_logits(logits, y), ((logits > 0).float() == y).sum()
    return F.cross_entropy(logits, y.long()), (logits.argmax(1) == y).sum()


def train_epoch(model: Model, data, order: np.ndarray):
    x, y = data
    model.net.train()
    bs, idx = model.task.recipe.batch_size, torch.from_numpy(order).to(_device)
    loss_sum = torch.zeros((), device=_device)
    correct = torch.zeros((), dtype=torch.long, device=_device)
    for i in range(0, len(idx), bs):
        b = idx[i : i + bs]
        with _autocast():
            logits = model.net(x[b])
        loss, hits = _loss(model, logits, y[b])
        model.opt.zero_grad(set_to_none=True)
        loss.backward()
        _keras_eps(model)
        model.opt.step()
        loss_sum += loss.detach() * len(b)  # accumulated on the device: no sync per batch
        correct += hits
    return model, loss_sum.item() / len(idx), correct.item() / len(idx)


def _keras_eps(model: Model) -> None:
    """Adam as Keras (and MXNet, and the Adam paper's efficient form) computes it.

    Keras adds eps to sqrt(v) before bias correction, PyTorch after: Keras's step equals PyTorch's
    with eps / sqrt(1 - beta2^t). Early steps differ most (31.6x at t = 1); 10 steps from the same
    weights diverged by 1.5e-2 (Iris) to 1.1e-1 (IMDB) between the two placements (harness.py parity).
    """
    model.steps += 1
    r = model.task.recipe
    for group in model.opt.param_groups:
        group["eps"] = r.eps / (1 - r.beta2**model.steps) ** 0.5


@torch.inference_mode()
def evaluate(model: Model, data):
    x, y = data
    model.net.eval()
    bs, loss_sum, correct = model.task.recipe.batch_size, 0.0, 0
    for i in range(0, len(x), bs):
        with _autocast():
            logits = model.net(x[i : i + bs])
        loss, hits = _loss(model, logits, y[i : i + bs])
        loss_sum, correct = loss_sum + loss * len(x[i : i + bs]), correct + hits
    return float(loss_sum) / len(x), int(correct) / len(x)


@torch.inference_mode()
def predict(model: Model, data) -> np.ndarray:
    x = data[0]
    model.net.eval()
    bs = model.task.recipe.batch_size
    with _autocast():
        logits = torch.cat([model.net(x[i : i + bs]) for i in range(0, len(x), bs)]).float()
    probs = torch.sigmoid(logits) if model.task.binary else logits.softmax(1)
    return probs.cpu().numpy()


def n_params(model: Model) -> int:
    return sum(p.numel() for p in model.net.parameters() if p.requires_grad)


def layer_params(model: Model) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, m in model.keyed:  # a Residual's sub-layers count towards its top-level key, as canonical_shapes
        top = top_level_key(key)
        out[top] = out.get(top, 0) + sum(p.numel() for p in m.parameters() if p.requires_grad)
    return out


def peak_device_mib(model: Model) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if _device.type == "cuda" else None


def sync(model: Model) -> None:
    if _device.type == "cuda":
        torch.cuda.synchronize()  # CUDA kernels run asynchronously; CPU eager ops are synchronous


def get_weights(model: Model) -> dict[str, np.ndarray]:
    out = {}
    for key, m in model.keyed:
        if isinstance(m, nn.Linear):
            k = m.weight.detach().cpu().numpy().T
            rows = nchw_flatten_rows(model.task, int(key.split(".")[0]))
            out[f"{key}.kernel"] = k if rows is None else k[rows]
            out[f"{key}.bias"] = m.bias.detach().cpu().numpy()
        elif isinstance(m, nn.Conv2d):
            out[f"{key}.kernel"] = m.weight.detach().cpu().numpy().transpose(2, 3, 1, 0)  # OIHW->HWIO
            out[f"{key}.bias"] = m.bias.detach().cpu().numpy()
        elif isinstance(m, nn.Embedding):
            out[f"{key}.embeddings"] = m.weight.detach().cpu().numpy()
        elif isinstance(m, _TokenAndPosition):
            out[f"{key}.token_embeddings"] = m.token.weight.detach().cpu().numpy()
            out[f"{key}.position_embeddings"] = m.position.weight.detach().cpu().numpy()
        elif isinstance(m, _SelfAttention):
            d, hk = m.output.out_features, (m.heads, m.key_dim)
            for n in ("query", "key", "value"):  # Linear (heads*key_dim, d) -> Keras's (d, heads, key_dim)
                p = getattr(m, n)
                out[f"{key}.{n}_kernel"] = p.weight.detach().cpu().numpy().T.reshape(d, *hk)
                out[f"{key}.{n}_bias"] = p.bias.detach().cpu().numpy().reshape(hk)
            out[f"{key}.output_kernel"] = m.output.weight.detach().cpu().numpy().T.reshape(*hk, d)
            out[f"{key}.output_bias"] = m.output.bias.detach().cpu().numpy()
        elif isinstance(m, nn.LayerNorm):
            out[f"{key}.gamma"] = m.weight.detach().cpu().numpy()
            out[f"{key}.beta"] = m.bias.detach().cpu().numpy()
        elif isinstance(m, _LastHidden):
            lstm = m.lstm
            out[f"{key}.kernel"] = lstm.weight_ih_l0.detach().cpu().numpy().T
            out[f"{key}.recurrent_kernel"] = lstm.weight_hh_l0.detach().cpu().numpy().T
            out[f"{key}.bias"] = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().cpu().numpy()
    # Copies: .numpy() of a CPU tensor shares its memory, and training would change a "snapshot".
    return {k: np.array(v, np.float32, order="C") for k, v in out.items()}


@torch.no_grad()
def set_weights(model: Model, weights: dict[str, np.ndarray]) -> Model:
    def t(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=_device)

    for key, m in model.keyed:
        if isinstance(m, nn.Linear):
            rows = nchw_flatten_rows(model.task, int(key.split(".")[0]))
            k = weights[f"{key}.kernel"]
            m.weight.copy_(t((k if rows is None else k[np.argsort(rows)]).T))
            m.bias.copy_(t(weights[f"{key}.bias"]))
        elif isinstance(m, nn.Conv2d):
            m.weight.copy_(t(weights[f"{key}.kernel"].transpose(3, 2, 0, 1)))  # HWIO->OIHW
            m.bias.copy_(t(weights[f"{key}.bias"]))
        elif isinstance(m, nn.Embedding):
            m.weight.copy_(t(weights[f"{key}.embeddings"]))
        elif isinstance(m, _TokenAndPosition):
            m.token.weight.copy_(t(weights[f"{key}.token_embeddings"]))
            m.position.weight.copy_(t(weights[f"{key}.position_embeddings"]))
        elif isinstance(m, _SelfAttention):
            width = m.heads * m.key_dim
            for n in ("query", "key", "value"):
                getattr(m, n).weight.copy_(t(weights[f"{key}.{n}_kernel"].reshape(-1, width).T))
                getattr(m, n).bias.copy_(t(weights[f"{key}.{n}_bias"].reshape(width)))
            m.output.weight.copy_(t(weights[f"{key}.output_kernel"].reshape(width, -1).T))
            m.output.bias.copy_(t(weights[f"{key}.output_bias"]))
        elif isinstance(m, nn.LayerNorm):
            m.weight.copy_(t(weights[f"{key}.gamma"]))
            m.bias.copy_(t(weights[f"{key}.beta"]))
        elif isinstance(m, _LastHidden):
            m.lstm.weight_ih_l0.copy_(t(weights[f"{key}.kernel"].T))
            m.lstm.weight_hh_l0.copy_(t(weights[f"{key}.recurrent_kernel"].T))
            m.lstm.bias_ih_l0.copy_(t(weights[f"{key}.bias"]))
            m.lstm.bias_hh_l0.zero_()
    return model
