"""NVMe over TCP: the PDU codec (``pdu``), the Fabrics structures (``fabrics``)
and the host (``host``: ``connect(addr) -> TcpController``)."""
