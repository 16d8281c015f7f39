"""The runtime's own tests (template/vendor/tasktier)."""
