import math

import pytest
import torch

from nasenv.metrics import FullRankingEvaluator, ranking_metrics


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
