"""Federation plumbing on Flower's Message API: typed message records, the study spec, an
in-process Grid for embedded runs, the ServerApp/ClientApp pair and the coordinator workflows.

Only `flute.engine.flower` imports Flower; import the submodules you need (importing this
package stays cheap)."""
