"""Generate a dataset's versioned split file: ``python -m sing_lit.make_splits data=prid2011 data.root=...``.

The trials are drawn from ``data.protocol`` (seeded) and written to ``out`` (by default
``<data.name>.json`` in the current directory; never into the installed package). Runs read it with
``data.split_file=<that file>``, so every later run uses exactly these identities and gallery images;
to make it a dataset's default, commit it as ``src/sing_lit/splits/<name>.json``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from sing_lit.runtime.cli import CONFIG_DIR, UserError, run_guarded


def make_splits(cfg: DictConfig) -> Path:
    out = Path(cfg.out or f"{cfg.data.name}.json").absolute()
    if out.exists() and not cfg.overwrite:
        raise UserError(f"split file {out} exists; pass overwrite=true to replace it (runs that used it will "
                        "no longer be comparable)")
    dm = hydra.utils.instantiate(cfg.data, split_file=None, split_out=str(out))
    dm._prepare_records()
    print(f"wrote {len(dm.trials)} trials for {cfg.data.name} to {out}\n"
          f"use it by adding data.split_file={out} to the same data settings, e.g. python -m sing_lit.train "
          f"data={cfg.data.name} data.split_file={out} ...; to make it the default for {cfg.data.name}, "
          f"commit it as src/sing_lit/splits/{cfg.data.name}.json")
    return out


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="make_splits")
def main(cfg: DictConfig) -> None:
    run_guarded(lambda: make_splits(cfg))


if __name__ == "__main__":
    main()
