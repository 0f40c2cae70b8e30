"""cassle: self-supervised models are continual learners (CaSSLe), a PyTorch Lightning reimplementation."""
