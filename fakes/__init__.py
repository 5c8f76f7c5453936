"""Test doubles: faithful fakes of the services we call, as real servers.

Used by tests, benchmarks and the embedded demo. Production code never imports this
package, except ``server/demo.py``, the one place that wires the embedded demo.
"""
