"""A job's options are read once from `flywheel train`'s command line."""

from __future__ import annotations

from cli.main import make_parser
from train.job_options import JobOptions


def test_only_the_parameters_given_on_the_command_line_are_kept(tmp_path):
    args = make_parser().parse_args(
        ["train", "--method", "dpo", "--data-dir", str(tmp_path), "--beta", "0.2", "--epochs", "2"]
    )
    opts = JobOptions.from_args(args)
    assert opts.params == {"beta": 0.2, "epochs": 2.0}  # the rest is the recipe's to choose
    assert (opts.method, opts.data_dir, opts.base, opts.job_id) == ("dpo", tmp_path, "base", None)
    assert opts.gateway == args.gateway and opts.api_key == args.api_key
