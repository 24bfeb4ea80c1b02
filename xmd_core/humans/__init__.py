"""The human study (Sec. 3.2 and Figure 1 of the paper).

- :mod:`.design`: which participant answers which clip under which condition, and its checks;
- :mod:`.schema`: the trials table every source writes (the widget, the simulated panel);
- :mod:`.widget`: the listening/viewing test, one trial at a time, in JupyterLab;
- :mod:`.panel`: the simulated panel of the embedded profile (labelled "simulated" wherever shown);
- :mod:`.analysis`: accuracy per condition, the mixed-effects regression, class-wise accuracy,
  alignment with the LLMs and the complete Figure 1.

The conditions carry the models' names: ``audio`` (ears), ``silent_video`` (eyes) and
``sounded_video`` (ears and eyes).
"""

from .design import CONDITIONS, CONDITION_NAMES

__all__ = ["CONDITIONS", "CONDITION_NAMES"]
