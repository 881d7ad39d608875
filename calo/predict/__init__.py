"""``calo-predict``: a trained fraction or condensation run applied to new files, one output entry per input
entry (a ROOT friend tree), streamed in chunks, serially or on a Dask cluster.

:func:`predict` returns the predictions of files as an awkward array (for notebooks);
:func:`predict_files` writes one ``<stem>_pred.root`` per input (the command line's work);
:class:`Predictor` is a loaded run that predicts one chunk at a time. The output columns and
the status codes are described in :mod:`calo.predict.core`, the file layout in
:mod:`calo.predict.output`.

Examples
--------
>>> from calo.predict import STATUS_DOC
>>> STATUS_DOC[3]
'skipped, negative_energy: negative hit energy'
"""

from calo.predict.core import (
    METHODS,
    POSTPROCESS,
    SCHEMA_FILE,
    STATUS_DOC,
    CondensationPredictor,
    Predictor,
    PredictResult,
    column_names,
    condensation_column_names,
    iter_predictions,
    output_paths,
    predict,
    predict_files,
    resolve_schema,
)
from calo.predict.output import (
    CLUSTER_COUNTER,
    FORMATS,
    HIT_COUNTER,
    OutputWriter,
    columns_to_array,
)

__all__ = [
    "CLUSTER_COUNTER",
    "FORMATS",
    "HIT_COUNTER",
    "METHODS",
    "POSTPROCESS",
    "SCHEMA_FILE",
    "STATUS_DOC",
    "CondensationPredictor",
    "OutputWriter",
    "PredictResult",
    "Predictor",
    "column_names",
    "columns_to_array",
    "condensation_column_names",
    "iter_predictions",
    "output_paths",
    "predict",
    "predict_files",
    "resolve_schema",
]
