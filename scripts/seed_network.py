"""Create the VPC, subnet and security group the ECS/ELB test fixtures need on
the local moto server (moto validates them; the Rust tests would otherwise
need the large EC2 SDK crate only for this), in the fixtures' account and,
through the member role, in each member account of the fleet tests
(TEST_MEMBER_ACCOUNTS). Prints shell exports."""
import os

import boto3

MEMBERS = os.environ.get("TEST_MEMBER_ACCOUNTS", "444455556666,777788889999").split(",")


def network(**credentials):
    ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1", **credentials)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="autopilot-test", Description="tests", VpcId=vpc)["GroupId"]
    return vpc, f"{subnet},{subnet_b}", sg


vpc, subnets, sg = network()
members = []
sts = boto3.client("sts", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
for account in filter(None, MEMBERS):
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/ecs-autopilot-member", RoleSessionName="test-bed")
    c = c["Credentials"]
    m = network(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                aws_session_token=c["SessionToken"])
    members.append(f"{account}:{m[0]}:{m[1]}:{m[2]}")
print(f"export TEST_VPC_ID={vpc} TEST_SUBNET_IDS={subnets} TEST_SECURITY_GROUP_ID={sg} "
      f"TEST_MEMBER_NETWORKS='{';'.join(members)}'")
