"""fleetaudit: what really listens on every open port of a fleet, seen from outside and inside."""

import warnings

__version__ = "0.1.0"

# asyncssh (2.14-2.24 at least) names cryptography's DSA classes at import, and cryptography
# (43+) warns on each use: ten "DSA is deprecated" lines before any output, on every command,
# that a user reads as an error. That one warning, from asyncssh only, is dropped here, the
# one module every path imports first (the CLI, the library, the tests). The category is
# matched by its base class, UserWarning: importing cryptography to name it would slow every
# start. Any other warning, from asyncssh or anyone, is shown as Python shows it.
warnings.filterwarnings("ignore", message="DSA is deprecated", category=UserWarning,
                        module=r"asyncssh(\.|$)")
