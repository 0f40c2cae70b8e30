"""DER++ (Buzzega et al., NeurIPS 2020): DER plus a replay loss on a second buffer batch.

    L = L_ssl(x) + alpha * E_{(x', z') ~ M} ||z' - h_theta(x')||^2 + beta * E_{x'' ~ M} L_ssl(x'')

The first two terms are DER (``cassle.strategies.replay.DER``, inherited: its buffer, its stored
target and its matching term with whatever DER matches, so a fix of DER is a fix of DER++). The
third is DER++'s: where the supervised DER++ takes the cross-entropy on the buffered labels, an SSL
method takes its own loss on fresh views of an *independently sampled* buffer batch, forwarded on
its own (aimagelab/mammoth ``models/derpp.py``: two ``buffer.get_data`` draws, two forwards).
Defaults: alpha 0.3, beta 0.5, buffer 500: mammoth's ``models/config/derpp.yaml`` for
seq-cifar100 with a 500-image buffer; each buffer batch has ``--replay_batch_size`` images
(default the batch size, mammoth's ``minibatch_size``). The replayed batch goes through the
method's plain ``ssl_step`` (no CaSSLe distillation), so a method with a queue (MoCoV2+, SwAV)
enqueues its keys too, as with ER's joined batch.
"""

from __future__ import annotations

from cassle.strategies.replay import DER


def add_derpp_args(group) -> None:
    group.add_argument(
        "--derpp_alpha",
        type=float,
        default=0.3,
        help="DER++ weight alpha of the DER term (mammoth derpp.yaml, seq-cifar100, buffer 500)",
    )
    group.add_argument(
        "--derpp_beta",
        type=float,
        default=0.5,
        help="DER++ weight beta of the replayed SSL loss (mammoth derpp.yaml, seq-cifar100, buffer 500)",
    )


class DERPP(DER):
    name = "derpp"
    console_keys = ("derpp_der", "derpp_replay")

    @staticmethod
    def check_args(args) -> None:
        for flag in ("derpp_alpha", "derpp_beta"):
            if getattr(args, flag) < 0:
                raise ValueError(f"--{flag} must be >= 0, got {getattr(args, flag)}")

    def __init__(self, model, args):
        super().__init__(model, args)
        self.check_args(args)
        self.alpha, self.beta = args.derpp_alpha, args.derpp_beta

    def loss(self, model, views, out, ctx):
        der, logs = super().loss(model, views, out, ctx)  # alpha * DER term (None while empty)
        if der is None:
            zero = out.loss.new_zeros(())
            return None, {**logs, "derpp_der": zero, "derpp_replay": zero}
        replayed, slots = self.replay_views(self.replay_batch_size)
        replayed = [model._memory_format(r).to(v.dtype) for r, v in zip(replayed, views)]
        replay = self.beta * model.plain_ssl_loss(replayed, self.buffer.labels[slots])
        return der + replay, {**logs, "derpp_der": der.detach(), "derpp_replay": replay.detach()}
