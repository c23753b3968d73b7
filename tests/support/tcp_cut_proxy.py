"""The cuttable TCP relay, shared with the fleet simulator: see ``hil/tcp_cut_proxy.py``."""

from hil.tcp_cut_proxy import TcpCutProxy

__all__ = ["TcpCutProxy"]
