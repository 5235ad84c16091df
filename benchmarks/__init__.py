"""The measurements behind ``benchmarks/RESULTS.md``, one script each, run as modules from the
repository root (``python -m benchmarks.<name> --help`` for each one's options):

* ``run_all``: every benchmark below in one command (``--quick``: small runs of each);
* ``eval_speed``: speed, fidelity and seed noise of one evaluation;
* ``epoch_profile``: where one training epoch's milliseconds go, beside dense products' rates;
* ``trainer_ab``: the trainer's speed and numerics, one commit against the working tree, paired;
* ``spmm_width``: whether a wider sparse product amortises;
* ``device_agreement``: GPU trainings against their repeat and against the CPU's, same seeds;
* ``cost_definition``: the test passes' share of a stored cost of version 1;
* ``lightgcn_vs_pyg``: our LightGCN-equivalent architecture against PyG's ``LightGCN``;
* ``table_stats``: what a benchmark table holds;
* ``env_throughput``: table-mode (or surrogate) env speed against FrozenLake-v1, load time, memory;
* ``cli_speed``: wall time of a table search from the command line;
* ``recommend_latency``: top-k latency of a final model, for one user and for every user;
* ``run_agents``: every agent x many seeds on the leaderboard's protocol;
* ``multifidelity``: multi-fidelity agents (successive halving, Hyperband, ASHA, Optuna's
  Hyperband pruner) against full-budget random search and TPE, by simulated seconds;
* ``mo_agents``: the multi-objective agents on ``RecNAS-Books-MO-v0`` (relative hypervolume, IGD);
* ``unmasked``: agents without action masks (plain PPO, DQN) against masked random search;
* ``quality``: the searched architectures against hand-designed recommenders;
* ``surrogate_search``: searches of the surrogate env, their finds trained for real;
* ``surrogate_models``: kernel ridge, boosted trees, an MLP and a ranking MLP as the surrogate,
  on the same splits;
* ``surrogate_data``: the surrogate's held-out order against the number of trainings fitted on;
* ``adapted_encoders``: frozen against adapted item encoders, paired seeds, by item popularity;
* ``adapt_recipes``: the adaptation recipe beyond its learning rate (pairs, epochs, LoRA rank);
* ``encoder_search``: the whole search with the item text encoder as a decision (core-v1);
* ``oneshot``: one-shot searchers (DARTS, GDAS, SPOS/RSPS, ENAS) on the real data, scored by the
  table, with the supernet's Kendall tau;
* ``seed_count``: how firm each table's seed-mean ranking is against its number of seeds;
* ``cross_task``: how alike the book tasks rank architectures;
* ``transfer``: controllers pretrained on the training tasks, on held-out tasks;
* ``reliability``: long fuzzing, determinism, memory and crash-safe build runs;
* ``memory_scale``: peak memory of a training against the task's size, sparse and dense masks;
* ``mo_speed``: a multi-objective episode's speed against a single-objective one;
* ``parallel_workers``: our agents with 1, 4 and 16 asynchronous workers in simulated time;
* ``live_workers``: live search with 1 and 2 worker processes (and Ray tasks), the speed-up;
* ``syne_tune_workers``: Syne Tune's schedulers on the table with 1, 4 and 16 simulated workers.

What several scripts share is in :mod:`benchmarks.common`; the protocol, scoring and runs of the
leaderboard are the installed packages' (:mod:`nasenv.leaderboard`, :mod:`agents.leaderboard`),
and the small space and sample tables of the smoke modes come from :mod:`nasenv.testing`. The
package imports nothing of ``tests`` (nor do the tests import it) and is not installed: it lives
in the repository, beside the results it writes to ``benchmarks/results/``.
"""
