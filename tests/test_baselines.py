"""CL, IMR, centralised joint-action PPO, IQL and the "independent PPO" name: bytes match a hand count,
each shares exactly what its paper says (CL's rewards up and advantages down), independent learners
never move because of another agent's reward, and each one's maths checks on hand-made inputs."""

import dataclasses

import numpy as np
import pytest
import torch

from confide.channels import IdealChannel, Inbox, Meter, array_wire_bytes
from confide.cli import main
from confide.core.central_critic import gather_team_rewards, reward_messages
from confide.core.centralized_ppo import CentralizedPPO, JointActionTooLarge
from confide.core.comms import Comms, Neighbourhood
from confide.core.gae import gae
from confide.core.independent_q_learning import IqlSettings, ReplayBuffer
from confide.core.intrinsic_moral_reward import shaped_rewards
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings
from confide.core.registry import build_learner
from confide.core.rollout import collect_rollout
from confide.core.trainer import make_run_env, seeds, train
from confide.experiments.config import (
    AlgoConfig,
    ConfigError,
    EnvConfig,
    PpoConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
)

N, B, T = 3, 2, 30
M = T * B
COMPLETE = ~np.eye(N, dtype=bool)


def _config(algo: str, updates: int = 1, env: str = "predation", agents: int = N) -> RunConfig:
    return RunConfig(
        env=EnvConfig(name=env, agents=2 if env == "matrix" else agents),
        algo=AlgoConfig(name=algo),
        ppo=PpoConfig(iterations=2),
        topology=TopologyConfig(kind="complete"),
        train=TrainConfig(updates=updates, batch=B, seed=0),
    )


def _learner_and_rollout(algo: str, agents: int = N):
    cfg = _config(algo, agents=agents)
    env = make_run_env(cfg)
    env_rng, _, gen = seeds(0)
    learner = build_learner(cfg, env.state_dim, env.n_actions, gen)
    rollout = collect_rollout(
        env,
        learner.act_logits,
        env_rng,
        torch.Generator().manual_seed(1),
        sample_actions=getattr(learner, "sample_actions", None),
    )
    return learner, rollout


class DropAll:
    def exchange(self, round, outgoing):
        return Inbox()


def test_cl_sends_rewards_up_and_advantages_down_and_the_bytes_match_a_hand_count():
    updates = 2
    summary = train(_config("cl", updates)).summary
    up = 2 + array_wire_bytes("rewards", (M,), 4)
    down = 2 + array_wire_bytes("advantages", (M,), 4)
    assert summary["bytes_sent"] == {
        "total": updates * N * (up + down),
        "reward": updates * N * up,
        "advantage": updates * N * down,
    }


def test_cl_advantages_are_gae_of_the_total_reward_under_the_central_critic():
    learner, rollout = _learner_and_rollout("cl")
    meter = Meter(IdealChannel())
    captured = []

    class Capture:
        def exchange(self, round, outgoing):
            captured.extend(outgoing)
            return meter.exchange(round, outgoing)

    with torch.no_grad():
        v = learner.central.values(rollout.flat_states()).reshape(T, B)
        v_next = learner.central.values(rollout.next_states.reshape(M, -1)).reshape(T, B)
    expected = gae(rollout.rewards.sum(-1), v, v_next, rollout.ends, 0.99, 0.98).reshape(-1)
    learner.update(rollout, Comms(Capture(), N), Neighbourhood(COMPLETE))
    down = [m for m in captured if m.kind == "advantage"]
    assert sorted(m.receiver for m in down) == list(range(N)) and {m.sender for m in down} == {N}
    for m in down:
        np.testing.assert_allclose(m.payload["advantages"], expected.numpy(), rtol=1e-5, atol=1e-5)
    up = [m for m in captured if m.kind == "reward"]
    assert sorted(m.sender for m in up) == list(range(N)) and {m.receiver for m in up} == {N}


def test_cl_with_a_missing_reward_the_central_unit_sends_nothing_and_no_one_moves():
    learner, rollout = _learner_and_rollout("cl")
    before = [t.clone() for t in learner.population.state_dict().values()]
    central_before = [t.clone() for t in learner.central.network.state_dict().values()]

    class LoseAgent1Reward:
        def exchange(self, round, outgoing):
            return IdealChannel().exchange(round, [m for m in outgoing if m.sender != 1])

    comms = Comms(LoseAgent1Reward(), N)
    stats = learner.update(rollout, comms, Neighbourhood(COMPLETE))
    assert stats["cl/agents_updated"] == 0
    for a, b in zip(before, learner.population.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(central_before, learner.central.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_cl_an_agent_whose_advantages_are_lost_keeps_its_policy_the_others_move():
    learner, rollout = _learner_and_rollout("cl")
    before = [p.detach().clone() for p in learner.population.actor_parameters()]

    class LoseAdvantageTo2:
        def exchange(self, round, outgoing):
            kept = [m for m in outgoing if not (m.kind == "advantage" and m.receiver == 2)]
            return IdealChannel().exchange(round, kept)

    stats = learner.update(rollout, Comms(LoseAdvantageTo2(), N), Neighbourhood(COMPLETE))
    assert stats["cl/agents_updated"] == 2
    for p, old in zip(learner.population.actor_parameters(), before, strict=True):
        rows, old_rows = p.detach().view(N, -1), old.view(N, -1)
        assert torch.equal(rows[2], old_rows[2])
        assert not torch.equal(rows[0], old_rows[0]) or not torch.equal(rows[1], old_rows[1])


def test_team_rewards_reject_a_nan_reward_and_refuse_a_partial_sum():
    _, rollout = _learner_and_rollout("cl")
    msgs = reward_messages(rollout, N, 0)
    comms = Comms(IdealChannel(), N)
    total = gather_team_rewards(Inbox(msgs), comms, N, M)
    np.testing.assert_allclose(total.numpy(), rollout.rewards.sum(-1).reshape(-1).numpy(), rtol=1e-6)
    bad = [msgs[0].with_payload({"rewards": np.full(M, np.nan, np.float32)}), *msgs[1:]]
    assert gather_team_rewards(Inbox(bad), comms, N, M) is None
    assert comms.rejected == {"reward:non_finite": 1}


def test_imr_adds_the_bonus_exactly_where_the_cooperative_act_was_taken():
    _, rollout = _learner_and_rollout("ippo")
    shaped = shaped_rewards(rollout, 6.0)
    took = rollout.actions == rollout.cooperative
    assert torch.equal(shaped - rollout.rewards, 6.0 * took.float())


def test_imr_reports_external_rewards_and_its_default_bonus_is_the_cost_of_cooperating_alone():
    result = train(_config("imr", updates=2))
    row = result.metrics[-1]
    assert row["collective_return"] == pytest.approx(sum(row["agent_returns"]), rel=1e-5)
    assert row["imr/intrinsic_return"] > 0
    learner = build_learner(_config("imr"), N, 2, torch.Generator())
    assert learner.bonus == 2 * N  # ss payoffs: cooperating alone costs 2N per step


def test_imr_on_a_matrix_game_rewards_playing_ones_part_of_the_optimum():
    learner = build_learner(_config("imr", env="matrix"), 1, 2, torch.Generator())
    assert learner.bonus == 3.0  # game 1 pays 4..7


def test_imr_refuses_an_environment_without_a_cooperative_act(monkeypatch):
    import confide.experiments.hyperparameters as hp

    monkeypatch.setattr(hp, "IMR_ENVIRONMENTS", ("predation",))
    with pytest.raises(ConfigError, match="cooperative act"):
        build_learner(_config("imr", env="matrix"), 1, 2, torch.Generator())


def _params_of(learner, agent: int) -> list[torch.Tensor]:
    return [p.detach().view(N, -1)[agent].clone() for p in learner.population.actor_parameters()]


@pytest.mark.parametrize("algo", ["ippo", "independent_ppo", "imr", "iql"])
def test_an_independent_learner_never_moves_because_of_another_agents_reward(algo):
    base, rollout = _learner_and_rollout(algo)
    other, _ = _learner_and_rollout(algo)
    rewards = rollout.rewards.clone()
    rewards[..., 2] += torch.randn(rewards[..., 2].shape, generator=torch.Generator().manual_seed(3)) * 5
    perturbed = dataclasses.replace(rollout, rewards=rewards)
    for learner, r in ((base, rollout), (other, perturbed)):
        learner.update(r, Comms(IdealChannel(), N), Neighbourhood(COMPLETE))
    for agent, should_match in ((0, True), (1, True), (2, False)):
        same = all(
            torch.equal(a, b) for a, b in zip(_params_of(base, agent), _params_of(other, agent), strict=True)
        )
        assert same == should_match


@pytest.mark.parametrize("algo", ["imr", "independent_ppo", "iql", "centralized_ppo"])
def test_non_communicating_learners_send_nothing_but_central_ones_meter_their_rewards(algo):
    summary = train(_config(algo, updates=2)).summary
    if algo == "centralized_ppo":
        assert summary["bytes_sent"] == {
            "total": 2 * N * (2 + array_wire_bytes("rewards", (M,), 4)),
            "reward": 2 * N * (2 + array_wire_bytes("rewards", (M,), 4)),
        }
    else:
        assert summary["bytes_sent"] == {"total": 0}
    assert summary["algo"] == algo


def test_joint_ppo_encodes_decodes_and_samples_its_joint_distribution():
    gen = torch.Generator().manual_seed(0)
    learner = CentralizedPPO(2, 2, 3, PpoSettings(), NetworkSizes((16,), (16,)), gen)
    joint = torch.arange(9)
    actions = learner.decode(joint)
    assert actions.tolist() == [[a, b] for a in range(3) for b in range(3)]
    assert torch.equal(learner.encode(actions), joint)
    states = torch.randn(1, 2).expand(40_000, 2)
    acts, logp = learner.sample_actions(states, gen)
    probs = torch.softmax(learner.joint_logits(states[:1]), -1)[0]
    counts = torch.bincount(learner.encode(acts.T), minlength=9).double() / 40_000
    assert (counts - probs.double()).abs().max() < 5 * (0.25 / 40_000) ** 0.5 + 1e-9
    joint_logp = torch.log_softmax(learner.joint_logits(states[:5]), -1).gather(
        -1, learner.encode(acts.T[:5]).unsqueeze(-1)
    )
    torch.testing.assert_close(logp[:, :5].sum(0), joint_logp.squeeze(-1).detach())
    marginals = learner.act_logits(states[:3]).exp()
    torch.testing.assert_close(marginals.sum(-1), torch.ones(2, 3))


def test_joint_ppo_refuses_a_large_joint_space_with_a_one_line_error(capsys):
    with pytest.raises(JointActionTooLarge):
        CentralizedPPO(8, 8, 2, PpoSettings(), NetworkSizes(), torch.Generator())
    code = main(["train", "--algo", "centralized_ppo", "--agents", "8", "--updates", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "2^8 = 256 joint actions" in err and "Traceback" not in err and err.count("\n") == 1


def test_replay_buffer_wraps_around_and_round_trips_its_state():
    _, rollout = _learner_and_rollout("iql")
    buf = ReplayBuffer(capacity=100)
    buf.add(rollout)
    buf.add(rollout)  # 120 transitions into 100 slots: the first 20 slots hold the second copy's tail
    assert buf.size == 100 and buf.cursor == 20
    np.testing.assert_array_equal(buf.data["states"][:20], rollout.flat_states()[40:60])
    clone = ReplayBuffer(100)
    clone.load_state_dict(buf.state_dict())
    for key in buf.data:
        assert torch.equal(buf.data[key], clone.data[key])


def test_iql_epsilon_decays_linearly_then_holds_and_its_td_target_is_hand_checkable():
    cfg = _config("iql", updates=10)
    learner = build_learner(cfg, N, 2, torch.Generator().manual_seed(0))
    assert learner.epsilon() == 1.0
    learner.updates_done = 5  # half of the run: exploration is over
    assert learner.epsilon() == pytest.approx(0.05)
    learner.updates_done = 9
    assert learner.epsilon() == pytest.approx(0.05)
    logits = learner.act_logits(torch.zeros(4, N))
    probs = logits.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(N, 4))
    assert probs.max().item() == pytest.approx(1 - 0.05 + 0.025)
    assert IqlSettings().target_every == 100


def test_iql_learns_the_best_joint_action_of_a_matrix_game():
    """Game 1 pays (5, 7; 6, 4): against a uniform partner agent 1 prefers 0 (6 > 5), then agent 2's
    best reply is 1 (7 > 5): independent greedy learners reach the optimum (0, 1)."""
    from confide.core.independent_q_learning import IndependentQLearning
    from confide.envs import MATRIX_GAMES, MatrixGameEnv

    env = MatrixGameEnv(MATRIX_GAMES[0], 64)
    gen = torch.Generator().manual_seed(0)
    settings = IqlSettings(lr=1e-2, batch_size=64, target_every=10)
    learner = IndependentQLearning(2, 1, 2, PpoSettings(), NetworkSizes((16,), (16,)), gen, settings, 80)
    env_rng = np.random.default_rng(0)
    comms = Comms(IdealChannel(), 2)
    for _ in range(80):
        rollout = collect_rollout(env, learner.act_logits, env_rng, gen)
        learner.update(rollout, comms, Neighbourhood(~np.eye(2, dtype=bool)))
    q = learner.population.own_logits(torch.zeros(1, 1))[:, 0]  # [N, A]
    assert q.argmax(-1).tolist() == [0, 1]
    assert q[1, 1].item() == pytest.approx(7.0, abs=0.5)  # agent 2's Q of its reply, against a greedy agent 1
