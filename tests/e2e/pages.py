"""Small helpers shared by the browser tests."""


def wait_joined_page(page, timeout=15000):
    """Wait until the page's editor has joined its document over the WebSocket."""
    page.wait_for_function("() => window.tandem && window.tandem.client.joined", timeout=timeout)
