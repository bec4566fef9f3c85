"""Checkpoints, in one package: what the files hold, what they are called, and how a run resumes from them.

- :mod:`tame.checkpoint.format`: the two file formats (training checkpoints, ``tame-train/1``; AM files,
  ``tame-attention/1``, which also reads training checkpoints and the original TAME snapshots), their validation
  (:func:`~tame.checkpoint.format.check_finite`, :func:`~tame.checkpoint.format.check_state_dict`) and the RNG state
  a checkpoint carries;
- :mod:`tame.checkpoint.naming`: ``epoch_{N}.pt`` / ``step_{S}.pt``, and how a folder's checkpoints are found;
- :mod:`tame.checkpoint.resume`: which checkpoint a run resumes from, what it may change on resume, and the
  :class:`~tame.checkpoint.resume.Checkpoints` that writes and restores a training run's state.

Nothing is imported here, so that :mod:`tame.models` can read AM files without pulling in the resume policy.
"""
