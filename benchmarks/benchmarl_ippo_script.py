"""BenchMARL's IPPO on VMAS simple spread, run by ``peers.py`` inside BenchMARL's own venv.

Not importable from confide's environment (it imports ``benchmarl``), and it imports nothing of
confide. Arguments: ``FRAMES SEED OUT_DIR``. Prints one JSON line: frames, wall seconds and the mean
episode return of every collected batch (a frame is one environment step of all agents).

BenchMARL's defaults are kept (IPPO, continuous actions, shared parameters, 6000 frames per batch, 45
minibatch iterations of 400, lr 5e-5) except: episodes of 25 steps (the MPE length; BenchMARL's task
default is 100), no evaluation, rendering, loggers or checkpoints, CPU, and 1 torch thread.
"""

import json
import sys
import time

import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

from benchmarl.algorithms import IppoConfig  # noqa: E402
from benchmarl.environments import VmasTask  # noqa: E402
from benchmarl.experiment import Experiment, ExperimentConfig  # noqa: E402
from benchmarl.models.mlp import MlpConfig  # noqa: E402


def main() -> None:
    frames, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    config = ExperimentConfig.get_from_yaml()
    config.max_n_frames = frames
    config.loggers = []
    config.evaluation = False
    config.render = False
    config.create_json = False
    config.checkpoint_interval = 0
    config.checkpoint_at_end = False
    config.save_folder = out
    config.sampling_device = config.train_device = config.buffer_device = "cpu"
    task = VmasTask.SIMPLE_SPREAD.get_from_yaml()
    task.config["max_steps"] = 25
    task.config["n_agents"] = 3
    experiment = Experiment(
        task=task,
        algorithm_config=IppoConfig.get_from_yaml(),
        model_config=MlpConfig.get_from_yaml(),
        critic_model_config=MlpConfig.get_from_yaml(),
        seed=seed,
        config=config,
    )
    returns: list[float] = []
    log_collection = experiment.logger.log_collection

    def record(*args, **kwargs) -> float:
        value = log_collection(*args, **kwargs)
        returns.append(value)
        return value

    experiment.logger.log_collection = record
    start = time.perf_counter()
    experiment.run()
    seconds = time.perf_counter() - start
    print(json.dumps({"frames": experiment.total_frames, "seconds": seconds, "returns": returns}))


if __name__ == "__main__":
    main()
