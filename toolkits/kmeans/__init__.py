"""k-means clustering across the cluster: exact Lloyd or mini-batch, k-means++ / k-means|| initialisation.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import kmeans
    >>> model = kmeans.create(Frame({"x": [0.0, 0.1, 5.0, 5.1]}), 2, seed=0, verbose=False)
    >>> model.num_clusters
    2
"""

from framelab.toolkits.kmeans.kmeans import KMeansModel, create

__all__ = ["KMeansModel", "create"]
