"""The local stack: the deployment plan run as local processes (`leanrag local up`)."""
