"""The septic/non-septic network's stages: ``train``, ``evaluate``, ``crossval``, the logistic
baseline, and the frame/video/patient scores they report."""
