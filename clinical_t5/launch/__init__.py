"""Launchers that start one training command in many processes.

`tpu` runs it on every worker of a Cloud TPU VM, `slurm` maps SLURM variables
to jax.distributed settings, `local` starts N processes on 127.0.0.1, and
`worker` is the per-process entry point that initializes jax.distributed
before it runs the trainer. `clinical-t5 launch` (`cli`) is the command line.
"""
