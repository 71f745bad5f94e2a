"""Federated neural tabular generators (F-HUF-11/12/13, F-IMSD-13): the shared encoder
(`encoding`), federated training with secure aggregation and DP-SGD (`federated_fit`), guided
rejection sampling for exact conditions (`rejection`), saving (`persist`) and the models
(`diffusion`, ...). Nothing here imports torch at package import; the modules that need it import
it inside their functions (`runtime.torch_module`), so listing generators stays instant."""
