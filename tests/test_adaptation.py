import torch

from reciprocal_gym.core import ReciprocalState, adaptation


def _state(B=2, n=6, C=2):
    return ReciprocalState.empty(B, n, C, 3, torch.float64, torch.device("cpu"))


def _at(labels, index):
    return labels.gather(1, index.unsqueeze(-1).expand(-1, -1, labels.shape[-1]))


def _labels(B=2, n=6, C=2):
    probs = torch.rand(B, n, C, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return probs / probs.sum(-1, keepdim=True)


def test_pseudo_labels_soft_and_hard():
    probs = torch.tensor([[[0.2, 0.8], [0.7, 0.3]]], dtype=torch.float64)
    assert torch.equal(adaptation.pseudo_labels(probs, "soft"), probs)
    assert torch.equal(adaptation.pseudo_labels(probs, "hard"), torch.tensor([[[0.0, 1.0], [1.0, 0.0]]],
                                                                            dtype=torch.float64))


def test_add_is_greedy_and_keeps_labels():
    s, lab = _state(), _labels()
    s = adaptation.add(s, torch.tensor([[1], [4]]), _at(lab, torch.tensor([[1], [4]])))
    s = s.replace(step=s.step + 1)
    s = adaptation.add(s, torch.tensor([[2], [0]]), torch.full((2, 1, 2), 0.5, dtype=torch.float64))
    assert s.in_use.sum().item() == 4 and s.weight.sum().item() == 4.0
    assert torch.equal(s.label[0, 1], lab[0, 1])  # first label kept
    assert s.age[0].tolist() == [-1, 0, 1, -1, -1, -1]
    assert not adaptation.selectable(s, "add")[0, 1]


def test_amend_replaces_the_pseudo_labeled_part():
    s, lab = _state(), _labels()
    for idx in (torch.tensor([[0, 1], [2, 3]]), torch.tensor([[1, 5], [4, 5]])):
        s = adaptation.amend(s, idx, _at(lab, idx))
    assert s.in_use[0].tolist() == [False, True, False, False, False, True]
    assert s.in_use[1].tolist() == [False, False, False, False, True, True]
    assert s.weight.sum(1).tolist() == [2.0, 2.0]
    assert adaptation.selectable(s, "amend").all()


def test_swap_is_first_in_first_out_at_capacity():
    s, lab = _state(B=1, n=8), _labels(B=1, n=8)
    for step, idx in enumerate([[3], [1], [6], [0]]):
        s = adaptation.swap(s, torch.tensor([idx]), _at(lab, torch.tensor([idx])), capacity=3)
        s = s.replace(step=s.step + 1)
        assert int(s.in_use.sum()) == min(step + 1, 3)
    assert torch.nonzero(s.in_use[0]).squeeze(1).tolist() == [0, 1, 6]  # 3 (oldest) left
    assert s.weight[0, 3] == 0 and torch.all(s.label[0, 3] == 0)


def test_expected_is_a_mixture_of_measures():
    s, lab = _state(B=1, n=4), _labels(B=1, n=4)
    law = torch.tensor([[0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    s1 = adaptation.expected(s, law, lab, mass=2.0, rate=1.0)
    torch.testing.assert_close(s1.weight, 2.0 * law)
    law2 = torch.tensor([[0.0, 0.5, 0.5, 0.0]], dtype=torch.float64)
    lab2 = _labels(B=1, n=4).flip(-1)
    s2 = adaptation.expected(s1, law2, lab2, mass=2.0, rate=0.25)
    # the measure on X x Y: weight * label, mixed with rates 0.75 / 0.25
    joint = s2.weight.unsqueeze(-1) * s2.label
    expected_joint = 0.75 * s1.weight.unsqueeze(-1) * s1.label + 0.25 * 2.0 * law2.unsqueeze(-1) * lab2
    torch.testing.assert_close(joint, expected_joint)
    assert s2.in_use[0].tolist() == [True, True, True, False]
    torch.testing.assert_close(s2.label.sum(-1)[s2.in_use], torch.ones(3, dtype=torch.float64))
