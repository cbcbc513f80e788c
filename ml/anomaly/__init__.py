"""Order anomaly detection: an isolation forest over the delay model's ten shipping features.

``train_anomaly`` fits it (scikit-learn), ``save_anomaly`` stores it in the registry as plain JSON, and
``AnomalyModel`` loads and scores it with numpy: ``anomaly_score`` in (0, 1] (higher = more anomalous) and
``is_anomaly`` above the threshold that the top ``contamination`` share (1 %) of the training orders exceed.
"""

from ml.anomaly.artifacts import save_anomaly
from ml.anomaly.model import AnomalyModel
from ml.anomaly.train import AnomalyTrainConfig, TrainedAnomaly, train_anomaly

__all__ = ["AnomalyModel", "AnomalyTrainConfig", "TrainedAnomaly", "save_anomaly", "train_anomaly"]
