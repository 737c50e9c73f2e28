"""Create the VPC, subnet and security group the ECS/ELB test fixtures need on
the local moto server (moto validates them; the Rust tests would otherwise
need the large EC2 SDK crate only for this). Prints shell exports."""
import os

import boto3

ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
sg = ec2.create_security_group(GroupName="autopilot-test", Description="tests", VpcId=vpc)["GroupId"]
print(f"export TEST_VPC_ID={vpc} TEST_SUBNET_IDS={subnet},{subnet_b} TEST_SECURITY_GROUP_ID={sg}")
