"""Policy pack entry point (PulumiPolicy.yaml): `pulumi preview --policy-pack policies`."""

from pulumi_policy import PolicyPack

from policies.pack import build_policies

PolicyPack(name="leanrag", policies=build_policies())
