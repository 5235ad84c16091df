import math

import pytest
import torch

from nasenv.metrics import FullRankingEvaluator, PairSet, ranking_metrics


def test_ranking_metrics_match_hand_computed_values():
    # user 0: truth {1, 3}; top-3 = [3, 0, 1] -> hits at ranks 1 and 3
    # user 1: truth {2}; top-3 = [0, 1, 4] -> no hit
    # user 2: truth {0, 1, 2, 4}; top-3 = [4, 2, 3] -> hits at ranks 1 and 2
    truth = torch.zeros(3, 5, dtype=torch.bool)
    truth[0, [1, 3]] = True
    truth[1, 2] = True
    truth[2, [0, 1, 2, 4]] = True
    top_k = torch.tensor([[3, 0, 1], [0, 1, 4], [4, 2, 3]])
    recall, ndcg = ranking_metrics(top_k, truth)
    assert recall.tolist() == pytest.approx([2 / 2, 0.0, 2 / 4])
    d = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    assert ndcg.tolist() == pytest.approx(
        [(d[0] + d[2]) / (d[0] + d[1]), 0.0, (d[0] + d[1]) / (d[0] + d[1] + d[2])]
    )


def test_users_without_truth_are_nan_and_skipped_by_evaluator():
    truth = torch.zeros(2, 4, dtype=torch.bool)
    truth[0, 1] = True
    recall, _ = ranking_metrics(torch.tensor([[1, 0], [0, 1]]), truth)
    assert recall[0] == 1.0 and math.isnan(recall[1])
    evaluator = FullRankingEvaluator(
        2, 4, seen=torch.tensor([[0, 0]]), truth=torch.tensor([[0, 1]]), k=2
    )
    assert evaluator.users.tolist() == [0]


def test_evaluator_hides_seen_items():
    # item 0 scores highest but is seen in training, so item 2 (the truth) must rank first
    users = torch.tensor([[1.0]])
    items = torch.tensor([[10.0], [1.0], [5.0], [0.0]])
    evaluator = FullRankingEvaluator(
        1, 4, seen=torch.tensor([[0, 0]]), truth=torch.tensor([[0, 2]]), k=1
    )
    score = evaluator(users, items)
    assert score.recall == 1.0 and score.ndcg == 1.0
    blind = FullRankingEvaluator(
        1, 4, seen=torch.zeros(0, 2, dtype=torch.long), truth=torch.tensor([[0, 2]]), k=1
    )
    assert blind(users, items).recall == 0.0


def test_evaluator_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        FullRankingEvaluator(1, 3, torch.zeros(0, 2, dtype=torch.long), torch.tensor([[0, 1]]), k=4)


META = torch.device("meta")  # shapes and devices without data: stands in for a GPU on the CPU


def test_ranking_metrics_create_their_tensors_on_the_inputs_device():
    truth = torch.zeros(3, 5, dtype=torch.bool, device=META)
    top_k = torch.zeros(3, 2, dtype=torch.long, device=META)
    for n_true in (None, truth.sum(1)):
        recall, ndcg = ranking_metrics(top_k, truth, n_true)
        assert recall.device == ndcg.device == META
        assert recall.shape == ndcg.shape == (3,)


def test_pair_sets_are_built_on_the_requested_device():
    pairs = torch.tensor([[0, 1], [1, 2]])
    assert PairSet(pairs, 2, 3).device == pairs.device
    assert PairSet(pairs, 2, 3, "cpu").rows(torch.tensor([0, 1])).tolist() == [
        [False, True, False],
        [False, False, True],
    ]


@pytest.mark.parametrize("dense", [True, False])
def test_a_pair_set_answers_like_a_dense_matrix_in_either_layout(monkeypatch, dense):
    import nasenv.metrics

    monkeypatch.setattr(nasenv.metrics, "DENSE_CELLS", 1 << 30 if dense else 0)
    generator = torch.Generator().manual_seed(0)
    n_users, n_items = 30, 17
    pairs = torch.randint(0, 17, (200, 2), generator=generator) % torch.tensor([25, 17])
    matrix = torch.zeros(n_users, n_items, dtype=torch.bool)  # users 25-29 have no pairs
    matrix[pairs[:, 0], pairs[:, 1]] = True
    pair_set = PairSet(torch.cat([pairs, pairs[:10]]), n_users, n_items)  # duplicates count once
    assert (pair_set.dense is not None) == dense
    assert len(pair_set) == int(matrix.sum()) and pair_set.counts.tolist() == matrix.sum(1).tolist()
    users = torch.randint(n_users, (500,), generator=generator)
    items = torch.randint(n_items, (500,), generator=generator)
    assert torch.equal(pair_set.contains(users, items), matrix[users, items])
    chunk = torch.tensor([29, 3, 3, 0, 26])
    assert torch.equal(pair_set.rows(chunk), matrix[chunk])
    empty = PairSet(torch.zeros(0, 2, dtype=torch.long), n_users, n_items)
    assert not empty.contains(users, items).any() and not empty.rows(chunk).any()


def test_the_evaluator_and_sampler_answer_alike_without_a_dense_matrix(monkeypatch):
    import nasenv.metrics
    from nasenv.train import NegativeSampler

    generator = torch.Generator().manual_seed(1)
    users, items = torch.randn(60, 8, generator=generator), torch.randn(45, 8, generator=generator)
    seen = torch.randint(0, 45, (400, 2), generator=generator) % torch.tensor([60, 45])
    truth = torch.randint(0, 45, (120, 2), generator=generator) % torch.tensor([60, 45])
    answers = []
    for cells in (1 << 30, 0):
        monkeypatch.setattr(nasenv.metrics, "DENSE_CELLS", cells)
        evaluator = FullRankingEvaluator(60, 45, seen, truth, k=5, chunk=7)
        sampler = NegativeSampler(evaluator.seen)
        negatives = sampler(seen[:, 0], torch.Generator().manual_seed(2))
        answers.append((evaluator(users, items), negatives.tolist()))
    assert answers[0] == answers[1]


def test_evaluator_ranks_on_the_device_of_the_representations(monkeypatch):
    import nasenv.metrics

    seen: list[set[torch.device]] = []

    def recording(top_k, truth, n_true):
        seen.append({top_k.device, truth.device, n_true.device})
        return torch.zeros(len(top_k)), torch.zeros(len(top_k))

    monkeypatch.setattr(nasenv.metrics, "ranking_metrics", recording)
    evaluator = FullRankingEvaluator(
        3, 4, seen=torch.tensor([[0, 0]]), truth=torch.tensor([[0, 1], [2, 3]]), k=2, chunk=1
    )
    assert evaluator.seen.device.type == "cpu"
    evaluator(torch.zeros(3, 2, device=META), torch.zeros(4, 2, device=META))
    assert seen == [{META}, {META}]  # one chunk per user with ground truth, all on meta


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluator_on_cuda_matches_the_cpu():
    generator = torch.Generator().manual_seed(0)
    users, items = torch.randn(50, 8, generator=generator), torch.randn(40, 8, generator=generator)
    pairs = torch.randint(40, (300, 2), generator=generator) % torch.tensor([50, 40])
    seen, truth = pairs[:200], pairs[200:]
    cpu = FullRankingEvaluator(50, 40, seen, truth, k=5, chunk=16)(users, items)
    gpu = FullRankingEvaluator(50, 40, seen, truth, k=5, chunk=16, device="cuda")
    result = gpu(users.cuda(), items.cuda())
    assert result.recall == pytest.approx(cpu.recall) and result.ndcg == pytest.approx(cpu.ndcg)
