"""Figures quoted by the model answers, made by a command (never pasted).

    python -m reference.figures [--out docs/figures]     (make figures)

``reverse_kl.png``: KL(q‖p_m) over (loc, scale) for p_m = ½N(−m,1) + ½N(m,1),
m = 3 and m = 2, with the local minima found by ``reference.kl_optima``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from reference.kl_optima import reverse_kl, reverse_kl_local_minima


def reverse_kl_figure(path: Path, separations: tuple[float, ...] = (3.0, 2.0)) -> Path:
    """Contour plots of the reverse KL, one panel per half-separation ``m``; returns ``path``.

    Each panel shows KL(N(loc, scale²)‖p_m), ``p_m = ½ N(−m, 1) + ½ N(m, 1)``,
    by :func:`reference.kl_optima.reverse_kl` on a ``(141, 161)`` grid of
    ``scale ∈ [0.3, 4.5]`` × ``loc ∈ [−5, 5]``, and marks every local minimum
    from :func:`reference.kl_optima.reverse_kl_local_minima` with its (loc, scale)
    and KL. Writes a PNG to ``path`` (parents created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loc = torch.linspace(-5, 5, 161, dtype=torch.float64)
    scale = torch.linspace(0.3, 4.5, 141, dtype=torch.float64)
    grid_loc, grid_scale = torch.meshgrid(loc, scale, indexing="xy")
    fig, axes = plt.subplots(1, len(separations), figsize=(6 * len(separations), 4.5), constrained_layout=True)
    for ax, m in zip(axes, separations):
        kl = reverse_kl(grid_loc, grid_scale, m)
        levels = torch.quantile(kl.flatten(), torch.linspace(0.0, 0.9, 25, dtype=torch.float64)).unique()
        cs = ax.contourf(grid_loc.numpy(), grid_scale.numpy(), kl.numpy(), levels=levels.numpy(), cmap="viridis")
        fig.colorbar(cs, ax=ax, label="KL(q ‖ p)")
        for fit in reverse_kl_local_minima(m):
            centre = 0.0 if abs(fit.loc) < 5e-4 else fit.loc  # no "-0.000" labels
            ax.plot(centre, fit.scale, "r*", markersize=12)
            ax.annotate(f"({centre:.3f}, {fit.scale:.3f})\nKL {fit.kl:.3f}", (centre, fit.scale),
                        textcoords="offset points", xytext=(6, 6), color="white", fontsize=8)
        ax.set(title=f"reverse KL, p = ½N(−{m:g},1) + ½N({m:g},1)", xlabel="loc", ylabel="scale")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def main() -> None:
    """Command line: ``python -m reference.figures [--out DIR]`` writes the PNG ``DIR/reverse_kl.png``.

    The figure is :func:`reverse_kl_figure` for m = 3 and m = 2 (the two
    mixtures of seed 004 §1.2 the model answers discuss); nothing is returned.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    print(f"wrote {reverse_kl_figure(args.out / 'reverse_kl.png')}")


if __name__ == "__main__":
    main()
