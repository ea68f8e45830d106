"""``curricula train`` (``hf_trainer_ext/train.py``): the same --seed gives the same run, whatever the global RNG."""

import torch


def test_the_same_seed_gives_the_same_run(two_stages, tmp_path):
    from safetensors.torch import load_file

    from hf_trainer_ext.train import main

    common = ["--packed", str(two_stages / "packed-en"), "--n_layer", "1", "--n_embd", "32", "--n_head", "2",
              "--max_steps", "3", "--per_device_train_batch_size", "4", "--report_to", "none", "--eval_strategy",
              "no", "--save_strategy", "no", "--disable_tqdm", "true", "--use_cpu", "true", "--domain_weights",
              "uniform"]
    torch.manual_seed(123)  # whatever the global state, --seed decides the model and the data order
    main([*common, "--seed", "7", "--output_dir", str(tmp_path / "a")])
    torch.manual_seed(456)
    main([*common, "--seed", "7", "--output_dir", str(tmp_path / "b")])
    main([*common, "--seed", "8", "--output_dir", str(tmp_path / "c")])
    a, b, c = (load_file(str(tmp_path / x / "model.safetensors")) for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
