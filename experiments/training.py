"""The training step of each experiment's model, in one place: what the experiment commands train with is
what :mod:`experiments.epoch_timing` times.

* VGAE (link prediction): full-batch encode, BCE on the training edges and freshly sampled negatives
  (``neg_ratio`` per edge) + (kl_weight / num_nodes) * KL, backward, optimizer step; the validation pass
  scores the validation edges in eval mode.
* VAE (MNIST): the negative (KL-weighted) ELBO of a minibatch, summed over the members of a stacked
  ensemble so that their gradients stay apart, backward, optimizer step.
"""

from __future__ import annotations

import torch


def vgae_train_step(
    model, opt: torch.optim.Optimizer, train_data, kl_weight: float = 1.0, neg_ratio: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch of full-batch VGAE training; returns the loss, its reconstruction and its KL term."""
    from torch_geometric.utils import negative_sampling

    model.train()
    opt.zero_grad()
    z = model.encode(train_data.x, train_data.edge_index)
    pos = train_data.pos_edge_label_index
    neg = negative_sampling(pos, train_data.num_nodes, num_neg_samples=neg_ratio * pos.size(1))
    recon = model.recon_loss(z, pos, neg)
    kl = model.kl_loss()
    loss = recon + (kl_weight / train_data.num_nodes) * kl
    loss.backward()
    opt.step()
    return loss, recon, kl


@torch.no_grad()
def vgae_scores(model, train_data, split) -> tuple[float, float, torch.Tensor]:
    """AUC and AP of the eval-mode embeddings on ``split``'s positive and negative edges, and the
    embeddings."""
    model.eval()
    z = model.encode(train_data.x, train_data.edge_index)
    auc, ap = model.test(z, split.pos_edge_label_index, split.neg_edge_label_index)
    return auc, ap, z


def vae_train_step(members, opt: torch.optim.Optimizer, xb: torch.Tensor, kl_scale: float):
    """One minibatch step of the MNIST VAE(s): ``members.elbo`` gives (objective, ELBO, recon, KL), each
    (E, B); the loss is the negative objective, averaged over the batch and summed over the members.
    Returns (ELBO, recon, KL)."""
    objective, elbo, recon, kl = members.elbo(xb if members.batched else xb[0], kl_scale)
    loss = -objective.mean(-1).sum()  # a sum over members keeps their gradients apart
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return elbo, recon, kl
