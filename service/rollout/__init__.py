"""Changing versions safely: aliases, canary weights, shadow runs, promote and roll back on evidence.

- :mod:`.state`: one model's rollout (aliases, weights, shadow, history) as a file in the model store,
  read and replaced atomically, so every worker and every replica that shares the store sees it;
- :mod:`.changes`: the changes an operator makes, checked before anything is written;
- :mod:`.evidence`: the comparison of two versions on the prediction log and its feedback, and the test
  a promotion must pass;
- :mod:`.routing`: which version answers a request (a number, an alias, or the canary split), per worker;
- :mod:`.shadow`: the background runs of a shadow version, shed first under load.
"""
