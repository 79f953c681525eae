"""``lerobot-wds verify``: checks a converted root against the format contract, optionally against its source.

Every check reports findings instead of raising, so one run lists every problem.
"""

from lerobot_wds.tools.report import Finding, Report
from lerobot_wds.tools.verify.run import VerifyConfig, verify

__all__ = ["Finding", "Report", "VerifyConfig", "verify"]
