"""Federated, differentially private synthetic tabular data (F-HUF-14, F-IMSD-1/3/13).

`schema` declares the typed table and its public discretisation, `marginal` the tree-shaped
marginal generator, `train` its federated training, `conditions` conditional requests,
`evaluate` fidelity/utility/privacy, `io` the CSV + schema JSON output.
"""
